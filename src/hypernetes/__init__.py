"""Hypernetes: a secure multi-tenant container platform with a Kubernetes API.

Every tenant pod runs in its own lightweight VM. The parts (one sub-package
each) are described in DESIGN.md: store, api, resources, auth, controllers,
node, runtime, network.
"""

__version__ = "0.1.0"
