/* net.c - pod-level set-up inside the VM: hostname, /etc files shared by the
 * pod's containers, loopback, and the interfaces the host asked for (found
 * by MAC address, since the host chose the MACs), with a default route. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hs.h"

static int if_by_mac(const char *mac, char *name, size_t len)
{
	DIR *d = opendir("/sys/class/net");
	struct dirent *e;
	int found = -1;
	while (d && (e = readdir(d))) {
		char path[300], addr[32] = "";
		snprintf(path, sizeof(path), "/sys/class/net/%s/address", e->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(addr, sizeof(addr), f))
			addr[strcspn(addr, "\n")] = 0;
		fclose(f);
		if (!strcasecmp(addr, mac)) {
			snprintf(name, len, "%s", e->d_name);
			found = 0;
			break;
		}
	}
	if (d)
		closedir(d);
	return found;
}

/* A VM restored from a template has the template's MAC: give the interface
 * the host's (it must be down for that), so the pod keeps the MAC it was
 * given and no two pods share one. */
static int set_mac(int s, const char *ifname, const char *mac)
{
	struct ifreq ifr;
	unsigned int b[6];
	if (sscanf(mac, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6) {
		errno = EINVAL;
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	if (ioctl(s, SIOCGIFFLAGS, &ifr))
		return -1;
	if (ifr.ifr_flags & IFF_UP) {
		ifr.ifr_flags &= ~IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr))
			return -1;
	}
	ifr.ifr_hwaddr.sa_family = 1; /* ARPHRD_ETHER */
	for (int i = 0; i < 6; i++)
		ifr.ifr_hwaddr.sa_data[i] = (char)b[i];
	return ioctl(s, SIOCSIFHWADDR, &ifr);
}

static int set_up(int s, const char *ifname, int mtu)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	if (mtu > 0) {
		ifr.ifr_mtu = mtu;
		if (ioctl(s, SIOCSIFMTU, &ifr))
			return -1;
	}
	if (ioctl(s, SIOCGIFFLAGS, &ifr))
		return -1;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	return ioctl(s, SIOCSIFFLAGS, &ifr);
}

static void set_sin(struct sockaddr *sa, in_addr_t addr)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)sa;
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = addr;
}

static int configure_if(int s, struct mpr ifc, char *err, size_t errlen)
{
	char *mac = mp_get_str(ifc, "mac"), *cidr = mp_get_str(ifc, "address");
	char *gw = mp_get_str(ifc, "gateway"), *ifname = mp_get_str(ifc, "ifname");
	int mtu = (int)mp_get_int(ifc, "mtu", 0), rc = -1;
	char name[IFNAMSIZ];
	struct ifreq ifr;
	struct in_addr ip, gwa;
	char *slash = cidr ? strchr(cidr, '/') : NULL;
	int prefix = slash ? atoi(slash + 1) : 32;
	if (slash)
		*slash = 0;
	if (mac && if_by_mac(mac, name, sizeof(name)) && ifname) {
		if (set_mac(s, ifname, mac)) {
			snprintf(err, errlen, "%s: setting MAC %s: %s", ifname, mac, strerror(errno));
			goto out;
		}
	}
	if (!mac || if_by_mac(mac, name, sizeof(name))) {
		snprintf(err, errlen, "no interface with MAC %s", mac ? mac : "(none)");
		goto out;
	}
	if (set_up(s, name, mtu)) {
		snprintf(err, errlen, "%s up: %s", name, strerror(errno));
		goto out;
	}
	if (cidr) {
		if (!inet_aton(cidr, &ip) || prefix < 0 || prefix > 32) {
			snprintf(err, errlen, "bad address %s", cidr);
			goto out;
		}
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
		set_sin(&ifr.ifr_addr, ip.s_addr);
		if (ioctl(s, SIOCSIFADDR, &ifr)) {
			snprintf(err, errlen, "%s address: %s", name, strerror(errno));
			goto out;
		}
		set_sin(&ifr.ifr_netmask, prefix ? htonl(~0u << (32 - prefix)) : 0);
		if (ioctl(s, SIOCSIFNETMASK, &ifr)) {
			snprintf(err, errlen, "%s netmask: %s", name, strerror(errno));
			goto out;
		}
	}
	if (gw && *gw) {
		struct rtentry rt;
		if (!inet_aton(gw, &gwa)) {
			snprintf(err, errlen, "bad gateway %s", gw);
			goto out;
		}
		memset(&rt, 0, sizeof(rt));
		set_sin(&rt.rt_dst, INADDR_ANY);
		set_sin(&rt.rt_genmask, INADDR_ANY);
		set_sin(&rt.rt_gateway, gwa.s_addr);
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		rt.rt_dev = name;
		if (ioctl(s, SIOCADDRT, &rt) && errno != EEXIST) {
			snprintf(err, errlen, "default route via %s: %s", gw, strerror(errno));
			goto out;
		}
	}
	rc = 0;
out:
	free(mac);
	free(cidr);
	free(gw);
	free(ifname);
	return rc;
}

int net_configure(struct mpr req, char *err, size_t errlen)
{
	static const char *files[] = {"hosts", "resolv.conf", "hostname"};
	char *hostname = mp_get_str(req, "hostname");
	int rc = -1;
	if (hostname && sethostname(hostname, strlen(hostname))) {
		snprintf(err, errlen, "hostname: %s", strerror(errno));
		free(hostname);
		return -1;
	}
	free(hostname);
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		char *content = mp_get_str(req, files[i]), path[64];
		snprintf(path, sizeof(path), "/run/hs/pod/%s", files[i]);
		if (content && write_file(path, content)) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			free(content);
			return -1;
		}
		free(content);
	}
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (set_up(s, "lo", 0)) {
		snprintf(err, errlen, "lo up: %s", strerror(errno));
		goto out;
	}
	struct mpr ifs;
	uint32_t n = 0;
	if (!mp_get(req, "interfaces", &ifs) && mpr_arr(&ifs, &n)) {
		snprintf(err, errlen, "interfaces must be a list");
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct mpr ifc = ifs;
		if (configure_if(s, ifc, err, errlen))
			goto out;
		if (mpr_skip(&ifs)) {
			snprintf(err, errlen, "bad interface entry");
			goto out;
		}
	}
	rc = 0;
out:
	close(s);
	return rc;
}
