"""The seccomp filter of the `process` runtime's bubblewrap sandboxes.

This filter is modelled on Docker's default profile. It works the other way round: everything is
allowed and a fixed list is denied. bubblewrap already gives the sandbox its own user, mount, pid, net,
ipc, uts and cgroup namespaces and drops every capability. The filter removes the kernel interfaces
that are still reachable from there and that no program in a sandbox needs. Each of them has been a
source of privilege escalations or of access to things outside the sandbox. Denied calls fail with
EPERM, as in Docker. The exception is clone3, which fails with ENOSYS: clone3 passes its flags in
memory, where seccomp cannot read them, and on ENOSYS glibc (2.34+) falls back to clone, whose flags
the filter can check.

What is denied and why:

* **New namespaces**: unshare, setns, clone3, and clone with any CLONE_NEW* flag (one masked check
  on clone's flags argument per flag; the flags are argument 0 on x86_64 and aarch64, argument 1 on
  s390). Without this, `unshare -U -r` gives user code uid 0 and every capability in a nested user
  namespace. That opens the kernel's namespaced-root attack surface: mounting file systems,
  netfilter, and the privilege escalations that go with them. Threads, fork and vfork still work,
  because they use no namespace flags.
* **Mounts and the root**: mount, umount, umount2, pivot_root, chroot, and the new mount API
  (open_tree, move_mount, fsopen, fsconfig, fsmount, fspick, mount_setattr). The mount table is
  bubblewrap's, and it stays that way.
* **Kernel keyrings**: keyctl, add_key, request_key. The key subsystem is hardly namespaced. Keys
  and key quotas are per kernel uid, and the sandbox's uid 1000 is the launcher's uid outside, so
  keys could be shared with other sandboxes and the host. Keyrings also have a long CVE history.
* **eBPF and perf**: bpf, perf_event_open. These are large in-kernel attack surfaces, and perf can
  observe other processes and the kernel.
* **io_uring**: io_uring_setup, io_uring_enter, io_uring_register. io_uring has had many exploitable
  bugs, and the operations it runs are not seen by seccomp. Docker's profile denies it since Docker 25.
  Runtimes such as libuv fall back to ordinary system calls.
* **Other processes' memory and files**: ptrace, process_vm_readv, process_vm_writev, pidfd_getfd,
  kcmp, process_madvise. The sandbox runs as the executor's uid. These calls would let user code
  read the executor's memory (where the callback token is) or steal its file descriptors.
* **userfaultfd**: userfaultfd lets a program stall the kernel at a chosen page fault, which is
  the usual building block of race exploits.
* **Kernel, modules, machine**: kexec_load, kexec_file_load, init_module, finit_module,
  delete_module, create_module, get_kernel_syms, query_module, reboot, swapon, swapoff, acct,
  quotactl, quotactl_fd, iopl, ioperm, syslog, vhangup, sethostname, setdomainname.
* **Clocks**: settimeofday, clock_settime, clock_adjtime, stime. The clocks belong to the host.
  adjtimex stays allowed, as in Docker: glibc's ntp_gettime reads through it, and any change it
  asks for needs CAP_SYS_TIME, which the sandbox never has.
* **File handles**: open_by_handle_at and name_to_handle_at. open_by_handle_at opens files by inode
  handle, past the sandbox's mount view (the "shocker" container escape).
* **fanotify**: fanotify_init. Docker allows it only with CAP_SYS_ADMIN. The unprivileged
  fanotify mode is recent and little used kernel code, and inotify covers file watching.
* **NUMA memory policy**: mbind, set_mempolicy, set_mempolicy_home_node, get_mempolicy,
  migrate_pages, move_pages. Docker allows these only with CAP_SYS_NICE. migrate_pages and
  move_pages work on other processes.
* **Obsolete calls**: nfsservctl, uselib, ustat, sysfs, _sysctl, lookup_dcookie, vm86, vm86old.
  They are old, little used or removed kernel paths.
* **personality** with any value other than PER_LINUX (0), PER_LINUX32 (0x8), UNAME26 (0x20000),
  their combination (0x20008) and the query 0xffffffff. These are the values Docker allows. The
  other flags (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, MMAP_PAGE_ZERO and others) weaken the memory
  layout and have helped kernel exploits. libseccomp allows only one comparison per argument in a
  rule, so "none of these five values" is built from single masked comparisons. See
  `_personality_rules`.
* **vsock sockets**: socket(AF_VSOCK, ...). vsock is not tied to a network namespace. On a VM host
  it would reach the hypervisor's and the host's vsock services even when the sandbox has no
  network. Docker denies it too.

**Architectures**: the filter is built for the native architecture only (x86_64 or aarch64, also
s390x, riscv64 and the rest of libseccomp's list). A system call made through another ABI kills
the process (SECCOMP_RET_KILL_PROCESS). That covers int 0x80 (i386) and the x32 numbers
(nr | 0x40000000) on x86_64, and AArch32 on aarch64. Without this, the 32-bit system call numbers,
which differ from the native ones, would walk past every rule above.

**Using it with bubblewrap**:
`fd = filter_fd()` returns a new sealed (immutable) memfd that holds the compiled BPF, with its
offset at 0 and close-on-exec set. Put `--seccomp`, `str(fd)` in bwrap's options (before `--`) and
give the same fd to `subprocess.Popen(..., pass_fds=(fd,))`, which keeps it open in the child. Close
it in the parent once Popen has returned. bwrap reads the fd to EOF, closes it and loads the filter
(with no_new_privs) just before it execs the sandboxed command, so the fd does not reach user code.
bwrap itself (including its pid-1 monitor) is not filtered. A wrapper that execs bwrap, such as the
cgroup-joining `/bin/sh -c ... exec "$@"`, passes the fd on unchanged. Every launch needs its own fd:
the file offset is shared between processes, so a second bwrap would read an empty filter, and
bwrap refuses that.

The BPF is generated by libseccomp (the system's libseccomp.so.2 through `pyseccomp`, a ctypes
binding), not written by hand. If either is missing or too old to know a listed system call,
`SeccompUnavailable` is raised, and the caller should refuse to start the sandbox (fail closed).
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from sandboxcp.domain.errors import SandboxUnavailable

__all__ = ["DENIED_SYSCALLS", "SeccompUnavailable", "bpf_program", "filter_fd", "pseudo_code"]


class SeccompUnavailable(SandboxUnavailable):
    """The seccomp filter cannot be built (no libseccomp, or one too old). Fail closed."""


# Each group is denied with EPERM. See the module docstring for why each one is here.
DENIED_SYSCALLS: dict[str, tuple[str, ...]] = {
    "namespaces": ("unshare", "setns"),
    "mounts": (
        "mount",
        "umount",
        "umount2",
        "pivot_root",
        "chroot",
        "open_tree",
        "move_mount",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "mount_setattr",
    ),
    "keyrings": ("keyctl", "add_key", "request_key"),
    "bpf_perf": ("bpf", "perf_event_open"),
    "io_uring": ("io_uring_setup", "io_uring_enter", "io_uring_register"),
    "other_processes": (
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "pidfd_getfd",
        "kcmp",
        "process_madvise",
    ),
    "userfaultfd": ("userfaultfd",),
    "kernel_and_machine": (
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "create_module",
        "get_kernel_syms",
        "query_module",
        "reboot",
        "swapon",
        "swapoff",
        "acct",
        "quotactl",
        "quotactl_fd",
        "iopl",
        "ioperm",
        "syslog",
        "vhangup",
        "sethostname",
        "setdomainname",
    ),
    "clocks": ("settimeofday", "clock_settime", "clock_adjtime", "stime"),
    "file_handles": ("open_by_handle_at", "name_to_handle_at"),
    "fanotify": ("fanotify_init",),
    "numa": (
        "mbind",
        "set_mempolicy",
        "set_mempolicy_home_node",
        "get_mempolicy",
        "migrate_pages",
        "move_pages",
    ),
    "obsolete": ("nfsservctl", "uselib", "ustat", "sysfs", "_sysctl", "lookup_dcookie", "vm86", "vm86old"),
}

# Refused with ENOSYS instead of EPERM, so that glibc falls back to clone (see the module docstring).
ENOSYS_SYSCALLS = ("clone3",)

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NAMESPACE_FLAGS = (
    CLONE_NEWNS,
    CLONE_NEWCGROUP,
    CLONE_NEWUTS,
    CLONE_NEWIPC,
    CLONE_NEWUSER,
    CLONE_NEWPID,
    CLONE_NEWNET,
)

# personality(2) values that are allowed, as in Docker's default profile.
PER_LINUX = 0x0000
PER_LINUX32 = 0x0008
UNAME26 = 0x0020000
PERSONALITY_QUERY = 0xFFFFFFFF
ALLOWED_PERSONALITIES = (PER_LINUX, PER_LINUX32, UNAME26, UNAME26 | PER_LINUX32, PERSONALITY_QUERY)

AF_VSOCK = 40

_NR_SCMP_ERROR = -1  # what libseccomp's name lookup returns for a name it does not know
# A system call that is defined only on other architectures (for example stime, or vm86 on x86_64)
# gets a negative pseudo-number. libseccomp drops its rule for the native architecture.


def _seccomp_module() -> Any:
    try:
        import pyseccomp
    except ImportError as err:  # pyseccomp missing, or it raised because libseccomp.so.2 is absent
        raise SeccompUnavailable(
            f"cannot build the sandbox seccomp filter: {err}",
            solution="Install the 'pyseccomp' Python package and the system libseccomp2 library",
        ) from err
    except (OSError, RuntimeError) as err:  # raised by pyseccomp when libseccomp.so.2 cannot be loaded
        raise SeccompUnavailable(
            f"cannot build the sandbox seccomp filter: libseccomp is unavailable ({err})",
            solution="Install the system libseccomp2 library (apt-get install libseccomp2)",
        ) from err
    return pyseccomp


def _personality_rules(sc: Any) -> Iterator[tuple[Any, ...]]:
    """Single-comparison argument lists whose union is exactly "arg0 not in ALLOWED_PERSONALITIES".

    libseccomp rejects a rule with two comparisons on the same argument, and a default-allow filter
    cannot express "allow these and deny the rest of this system call". So the complement is split
    into rules with one comparison each. Any one matching rule denies the call.

    * arg0 > 0xffffffff (the high word is not zero),
    * bit 31 clear and some bit other than 3 (PER_LINUX32) and 17 (UNAME26) set: one rule per bit.
      This leaves 0, 0x8, 0x20000 and 0x20008 allowed.
    * bit 31 set and some other low bit clear: one rule per bit. This leaves 0xffffffff allowed.
    """
    allowed_bits = PER_LINUX32 | UNAME26
    yield (sc.Arg(0, sc.GT, PERSONALITY_QUERY),)
    top = 1 << 31
    for bit in range(31):
        if not (1 << bit) & allowed_bits:
            yield (sc.Arg(0, sc.MASKED_EQ, (1 << bit) | top, 1 << bit),)
    for bit in range(31):
        yield (sc.Arg(0, sc.MASKED_EQ, top | (1 << bit), top),)


def _check_known(sc: Any, name: str) -> None:
    """Fail closed when libseccomp does not know `name`: its rule would be missing from the filter.

    A name libseccomp knows but the target arch lacks is fine: libseccomp leaves it out for that arch.
    """
    if sc.resolve_syscall(sc.Arch.NATIVE, name) == _NR_SCMP_ERROR:
        raise SeccompUnavailable(
            f"the installed libseccomp does not know the system call {name!r}; refusing to build a "
            "seccomp filter that would leave it open",
            solution="Upgrade libseccomp2 (2.5 or newer)",
        )


def _clone_flags_arg(sc: Any, arch: int) -> int:
    effective = sc.system_arch() if arch == sc.Arch.NATIVE else arch
    return 1 if effective in (sc.Arch.S390, sc.Arch.S390X) else 0


def build_filter(arch: int | None = None) -> Any:
    """The libseccomp filter object (a `pyseccomp.SyscallFilter`). `arch` defaults to the native
    one; another arch (a `pyseccomp.Arch` value) is only for checking that the filter builds there."""
    sc = _seccomp_module()
    target = sc.Arch.NATIVE if arch is None else arch
    try:
        flt = sc.SyscallFilter(sc.ALLOW)
        if target != sc.Arch.NATIVE:
            flt.remove_arch(sc.Arch.NATIVE)  # first: libseccomp refuses to mix byte orders
            flt.add_arch(target)
        # A system call from any other ABI (i386 int 0x80, x32, AArch32) kills the process.
        flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
        eperm = sc.ERRNO(errno.EPERM)
        for names in DENIED_SYSCALLS.values():
            for name in names:
                _check_known(sc, name)
                flt.add_rule(eperm, name)
        for name in ENOSYS_SYSCALLS:
            _check_known(sc, name)
            flt.add_rule(sc.ERRNO(errno.ENOSYS), name)
        _check_known(sc, "clone")
        flags_arg = _clone_flags_arg(sc, target)
        for flag in CLONE_NAMESPACE_FLAGS:
            flt.add_rule(eperm, "clone", sc.Arg(flags_arg, sc.MASKED_EQ, flag, flag))
        _check_known(sc, "personality")
        for args in _personality_rules(sc):
            flt.add_rule(eperm, "personality", *args)
        _check_known(sc, "socket")
        flt.add_rule(eperm, "socket", sc.Arg(0, sc.EQ, AF_VSOCK))
    except OSError as err:
        raise SeccompUnavailable(
            f"libseccomp failed to build the sandbox seccomp filter: {err}",
            solution="Check the libseccomp2 installation (2.5 or newer)",
        ) from err
    return flt


def _export(flt: Any, method: str) -> bytes:
    with tempfile.TemporaryFile() as out:
        try:
            getattr(flt, method)(out)
        except OSError as err:
            raise SeccompUnavailable(f"libseccomp failed to export the seccomp filter: {err}") from err
        out.seek(0)
        return out.read()


def compile_bpf(arch: int | None = None) -> bytes:
    """The filter compiled to classic BPF (struct sock_filter[]), as bwrap's --seccomp expects."""
    program = _export(build_filter(arch), "export_bpf")
    if not program or len(program) % 8:
        raise SeccompUnavailable(f"libseccomp exported a malformed BPF program ({len(program)} bytes)")
    return program


@functools.cache
def bpf_program() -> bytes:
    """The native filter as raw BPF bytes, built once per process. Raises SeccompUnavailable."""
    return compile_bpf()


def pseudo_code() -> str:
    """libseccomp's readable listing of the native filter (for reviews and debugging)."""
    return _export(build_filter(), "export_pfc").decode()


def filter_fd() -> int:
    """A new fd for bwrap's `--seccomp FD`: a sealed (immutable) memfd holding `bpf_program()`, with
    its offset at 0 and close-on-exec set (`pass_fds` keeps it open in the child only). The caller
    passes it to exactly one bwrap and closes it after spawning. Raises SeccompUnavailable."""
    program = bpf_program()
    fd = os.memfd_create("sandboxcp-seccomp", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(program)
        while view:
            view = view[os.write(fd, view) :]
        # Immutable from here on, for the bwrap that reads it and anything that might inherit it.
        fcntl.fcntl(
            fd,
            fcntl.F_ADD_SEALS,
            fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL,
        )
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
