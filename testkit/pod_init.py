"""A container's start, as a container runtime would do it (testkit/pods.py, the pod rehearsal).

    python testkit/pod_init.py SPEC.json

Runs as root, already in the pod's PID and network namespaces and in a mount namespace of its
own (`nsenter ... unshare --mount`). It builds the container's root filesystem and becomes the
container's process:

- a tmpfs root holding read-only bind mounts of the "image" (the host's /usr and /etc, the
  Python installation, the package's read-only install prefix and its dependencies),
- /dev from the host, /proc of the pod's PID namespace, /sys read-only,
- each volume mounted at its mountPath (read-only where the manifest says so),
- then the root itself made read-only when the container has readOnlyRootFilesystem,
- chroot, working directory, supplementary group (fsGroup), gid and uid of the pod's
  securityContext, no new privileges, and exec of the container's command with its env.

Stdlib only, and standalone: it runs before the chroot, with the host's view.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

PR_SET_NO_NEW_PRIVS = 38
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2) itself: a container's root takes a hundred or more, and a `mount` process each
    would cost seconds."""
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    if _libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount {source} on {target}: {os.strerror(e)}")


def bind(src: str, dst: str, read_only: bool) -> None:
    if not os.path.lexists(dst):  # a mount point (in the tmpfs root, or an image folder that lacks it)
        if os.path.isdir(src):
            os.makedirs(dst)
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            open(dst, "a").close()
    mount(src, dst, None, MS_BIND | MS_REC)
    if read_only:
        mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def bind_image(path: str, root: str, targets: list[str]) -> None:
    """Bind an image folder read-only, entry by entry where a volume's mount point must be made
    inside it (/etc/tickbook in /etc): as a runtime makes mount points in the image's layers."""
    if not any(t.startswith(path + "/") for t in targets):
        bind(path, root + path, read_only=True)
        return
    os.makedirs(root + path, exist_ok=True)
    for name in os.listdir(path):
        child = os.path.join(path, name)
        if os.path.islink(child):
            os.symlink(os.readlink(child), root + child)
        elif os.path.isdir(child) or os.path.isfile(child):
            bind_image(child, root, targets)


def build_root(spec: dict) -> str:
    root = spec["rootfs"]
    os.makedirs(root, exist_ok=True)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", root, "tmpfs", 0, "mode=755")
    for link, target in spec["symlinks"].items():  # merged /usr: /bin -> usr/bin ...
        os.symlink(target, root + link)
    os.makedirs(root + spec["workdir"], exist_ok=True)
    os.makedirs(root + "/proc")
    mount("proc", root + "/proc", "proc", 0)
    # Parents before children, as a runtime orders its mounts: a volume inside an image folder
    # (/etc/tickbook in /etc) and an image folder inside a volume (this checkout under /tmp when
    # the pod mounts an emptyDir at /tmp) both end up visible.
    missing = [m["path"] for m in spec["mounts"] if not os.path.lexists(m["path"])]
    steps = [(path, lambda path=path: bind_image(path, root, missing)) for path in spec["image"]]
    steps += [("/dev", lambda: bind("/dev", root + "/dev", read_only=False)),
              ("/sys", lambda: bind("/sys", root + "/sys", read_only=True))]
    steps += [(m["path"], lambda m=m: bind(m["source"], root + m["path"], read_only=m["read_only"]))
              for m in spec["mounts"]]
    for _, step in sorted(steps, key=lambda s: s[0].rstrip("/").count("/")):
        step()
    if spec["read_only_root"]:
        mount(None, root, None, MS_REMOUNT | MS_RDONLY)
    return root


def become(spec: dict) -> None:
    os.chroot(build_root(spec))
    os.chdir(spec["workdir"])
    os.setgroups(spec["groups"])
    os.setgid(spec["gid"])
    os.setuid(spec["uid"])
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    argv, env = spec["argv"], spec["env"]
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as e:  # what the runtime reports: "exec: ...: no such file or directory"
        print(f"exec {argv[0]}: {e.strerror}", file=sys.stderr)
        sys.exit(127)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        become(json.load(f))
