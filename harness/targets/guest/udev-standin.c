/*
 * udev stand-in for the harness's foreign-arch guest roots (built static by
 * harness/targets/rootfs.py, installed as systemd-udevd and udevadm).
 *
 * virtme-ng's init starts udevd, triggers a coldplug and waits for it to settle,
 * and all it needs from that is one rule: /dev/virtio-ports/<name> links to the
 * vportNpM nodes of its script I/O ports (devtmpfs makes the nodes themselves).
 * Real udev took 1.6 s of an arm64 boot under TCG; this makes the same links in
 * one exec. Any other invocation succeeds without doing anything.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int link_ports(void)
{
	DIR *dir = opendir("/sys/class/virtio-ports");
	struct dirent *entry;
	char path[512], name[256], target[300], link[600];

	if (!dir)
		return 0;
	mkdir("/dev/virtio-ports", 0755);
	while ((entry = readdir(dir))) {
		ssize_t len;
		int fd;

		if (strncmp(entry->d_name, "vport", 5))
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", entry->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		len = read(fd, name, sizeof(name) - 1);
		close(fd);
		while (len > 0 && (name[len - 1] == '\n' || name[len - 1] == '\0'))
			len--;
		if (len <= 0)
			continue;
		name[len] = '\0';
		snprintf(target, sizeof(target), "../%s", entry->d_name);
		snprintf(link, sizeof(link), "/dev/virtio-ports/%s", name);
		if (symlink(target, link) && errno == EEXIST) {
			unlink(link);
			symlink(target, link);
		}
	}
	closedir(dir);
	return 0;
}

int main(int argc, char **argv)
{
	const char *self = strrchr(argv[0], '/');

	self = self ? self + 1 : argv[0];
	if (!strcmp(self, "udevadm") && argc > 1 && !strcmp(argv[1], "trigger"))
		return link_ports();
	return 0;
}
