"""The identity service: a Keystone-v3-compatible API for users, projects (tenants) and roles.

- `IdentityService(store, data_dir)`: the service over a `Store` (all state under
  `/identity/`), with the Python API the API server and admin CLI call directly,
  Fernet tokens (keys in `<data_dir>/identity/fernet-keys/`) and argon2id passwords.
- `build_app(service)`: its Keystone v3 HTTP API, to mount under `/identity`.
- `Identity`: what the API server needs of any backend (`validate_token -> Principal`);
  `KeystoneProxyIdentity(url)` is one backed by an external Keystone.
- `kube.TokenAuthenticator(identity)`: bearer token -> Kubernetes `User`.
"""

from hypernetes.auth.identity.app import build_app
from hypernetes.auth.identity.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    IdentityError,
    NotBootstrapped,
    NotFound,
    Unauthorized,
)
from hypernetes.auth.identity.keys import FernetKeyRepository, KeyRepositoryError
from hypernetes.auth.identity.model import (
    ADMIN_PROJECT,
    ADMIN_ROLE,
    DEFAULT_DOMAIN_ID,
    MEMBER_ROLE,
    READER_ROLE,
    ROLE_NAMES,
    Principal,
    ProjectRecord,
    RoleAssignment,
    RoleRecord,
    UserRecord,
)
from hypernetes.auth.identity.protocol import Identity
from hypernetes.auth.identity.proxy import IdentityUnavailable, KeystoneProxyIdentity
from hypernetes.auth.identity.service import Bootstrap, IdentityService

__all__ = [
    "ADMIN_PROJECT",
    "ADMIN_ROLE",
    "DEFAULT_DOMAIN_ID",
    "MEMBER_ROLE",
    "READER_ROLE",
    "ROLE_NAMES",
    "BadRequest",
    "Bootstrap",
    "Conflict",
    "FernetKeyRepository",
    "Forbidden",
    "Identity",
    "IdentityError",
    "IdentityService",
    "IdentityUnavailable",
    "KeyRepositoryError",
    "KeystoneProxyIdentity",
    "NotBootstrapped",
    "NotFound",
    "Principal",
    "ProjectRecord",
    "RoleAssignment",
    "RoleRecord",
    "Unauthorized",
    "UserRecord",
    "build_app",
]
