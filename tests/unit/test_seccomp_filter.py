"""The process runtime's seccomp filter (sandboxcp.adapters.runtimes.seccomp), loaded by a real
bubblewrap into real processes: the denied system calls fail from inside the sandbox, the same probes
behave differently without the filter (so they test the filter, not something else), other ABIs are
killed, and ordinary work (Python, threads, fork, subprocess, bash, node) still runs.

bwrap is required: these tests fail, not skip, without it (scripts/setup.sh installs it)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
from typing import Any

import pyseccomp  # in the 'local' extra; the module under test needs it too
import pytest

from sandboxcp.adapters.runtimes import seccomp

PREFIX = os.path.realpath(sys.base_prefix)
PYTHON = os.path.join(PREFIX, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}")
if not os.path.exists(PYTHON):
    PYTHON = os.path.realpath(sys.executable)
X86_64 = platform.machine() == "x86_64"

CLONE_NEWUSER = seccomp.CLONE_NEWUSER
SIGCHLD = 17


@pytest.fixture(scope="module")
def bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        pytest.fail(
            "bubblewrap (bwrap) is not installed: the seccomp filter is tested inside real bwrap "
            "sandboxes. Install it with `apt-get install -y bubblewrap` (scripts/setup.sh does)."
        )
    return path


def sandbox(
    bwrap: str, cmd: list[str], *, with_filter: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `cmd` in a bwrap sandbox built like process.py's _bwrap_argv (uid 1000, all namespaces,
    no capabilities, read-only /usr and Python prefix), with or without the seccomp filter."""
    argv = [
        bwrap,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--uid",
        "1000",
        "--gid",
        "1000",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/bin",
        "/bin",
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
        "--symlink",
        "usr/sbin",
        "/sbin",
        "--ro-bind-try",
        "/etc/ld.so.cache",
        "/etc/ld.so.cache",
        "--ro-bind-try",
        "/etc/alternatives",
        "/etc/alternatives",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--chdir",
        "/tmp",
    ]
    if not PREFIX.startswith("/usr"):
        argv += ["--ro-bind", PREFIX, PREFIX]
    fd = seccomp.filter_fd() if with_filter else None
    try:
        if fd is not None:
            argv += ["--seccomp", str(fd)]
        return subprocess.run(
            [*argv, "--", *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"},
            pass_fds=(fd,) if fd is not None else (),
            stdin=subprocess.DEVNULL,
        )
    finally:
        if fd is not None:
            os.close(fd)


# Runs inside the sandbox. Each probe runs in a forked child (a probe that succeeds may change the
# process: ptrace(TRACEME), personality, unshare) and reports "ok", an errno name, or "signal:NAME".
# A probe is [label, syscall number, args] (args: int, str for a C string, None for NULL, "$pid" for
# the probing process's pid) or
# [label, "code", machine code hex] to run raw instructions (other ABIs' system calls).
PROBE = r"""
import ctypes, errno, json, mmap, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def arg(a):
    if a == "$pid":
        return ctypes.c_long(os.getpid())
    if a is None:
        return ctypes.c_void_p(None)
    if isinstance(a, str):
        return ctypes.c_char_p(a.encode())
    return ctypes.c_long(a)

def run(kind, payload):
    if kind == "code":
        m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        m.write(bytes.fromhex(payload))
        ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(m)))()
        return "ok"
    me = os.getpid()
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(kind), *[arg(a) for a in payload])
    if os.getpid() != me:  # the new child of a clone that was let through
        os._exit(0)
    return "ok" if r != -1 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))

results = {}
for label, kind, payload in json.loads(sys.argv[1]):
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rd)
        try:
            out = run(kind, payload)
        except BaseException as e:
            out = "exception:" + repr(e)
        os.write(wr, out.encode())
        os._exit(0)
    os.close(wr)
    out = os.read(rd, 4096).decode()
    os.close(rd)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        out = "signal:" + signal.Signals(os.WTERMSIG(status)).name
    results[label] = out
print(json.dumps(results))
"""

Probe = tuple[str, Any, Any]


def nr(name: str) -> int:
    number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
    assert number >= 0, f"{name} is not a native system call here"
    return int(number)


def run_probes(bwrap: str, probes: list[Probe], *, with_filter: bool = True) -> dict[str, str]:
    done = sandbox(bwrap, [PYTHON, "-c", PROBE, json.dumps(probes)], with_filter=with_filter)
    assert done.returncode == 0, f"probe runner failed ({done.returncode}): {done.stderr}"
    results: dict[str, str] = json.loads(done.stdout)
    return results


def native_denied_names() -> list[str]:
    names = [n for group in seccomp.DENIED_SYSCALLS.values() for n in group]
    return [n for n in names if pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, n) >= 0]


# -- the denied system calls, from inside a real sandbox -----------------------------------------------


def test_every_denied_syscall_fails_with_eperm_inside_the_sandbox(bwrap: str) -> None:
    names = native_denied_names()
    assert len(names) > 50
    results = run_probes(bwrap, [(n, nr(n), [0, 0, 0, 0, 0, 0]) for n in names])
    assert {n: r for n, r in results.items() if r != "EPERM"} == {}


def test_clone3_fails_with_enosys_so_that_glibc_falls_back_to_clone(bwrap: str) -> None:
    results = run_probes(bwrap, [("clone3", nr("clone3"), [None, 0])])
    assert results == {"clone3": "ENOSYS"}


# Probes with arguments chosen so that, without the filter, they succeed or fail with something other
# than EPERM on this kind of host: the EPERM with the filter then comes from the filter.
KEY_SPEC_PROCESS_KEYRING = -2
KEY_SPEC_SESSION_KEYRING = -3
AT_FDCWD = -100


def discriminating_probes() -> list[Probe]:
    probes: list[Probe] = [
        ("unshare(CLONE_NEWUSER)", nr("unshare"), [CLONE_NEWUSER]),
        ("setns(-1)", nr("setns"), [-1, 0]),
        ("mount(NULL...)", nr("mount"), [None, None, None, 0, None]),
        ("umount2(/nonexistent)", nr("umount2"), ["/nonexistent", 0]),
        ("chroot(/nonexistent)", nr("chroot"), ["/nonexistent"]),
        ("open_tree(/)", nr("open_tree"), [AT_FDCWD, "/", 0]),
        ("keyctl(GET_KEYRING_ID)", nr("keyctl"), [0, KEY_SPEC_SESSION_KEYRING, 1]),
        ("add_key(user)", nr("add_key"), ["user", "probe", "x", 1, KEY_SPEC_PROCESS_KEYRING]),
        ("request_key(user)", nr("request_key"), ["user", "no-such-key", None, 0]),
        ("bpf(bad cmd)", nr("bpf"), [0x7FFF, None, 0]),
        ("perf_event_open(NULL)", nr("perf_event_open"), [None, 0, -1, -1, 0]),
        ("io_uring_setup(0, NULL)", nr("io_uring_setup"), [0, None]),
        ("ptrace(TRACEME)", nr("ptrace"), [0, 0, 0, 0]),
        ("ptrace(ATTACH, no such pid)", nr("ptrace"), [16, 0x3FFFFFFF, 0, 0]),
        ("process_vm_readv(self, 0 iovecs)", nr("process_vm_readv"), ["$pid", None, 0, None, 0, 0]),
        ("process_vm_writev(self, 0 iovecs)", nr("process_vm_writev"), ["$pid", None, 0, None, 0, 0]),
        ("pidfd_getfd(-1)", nr("pidfd_getfd"), [-1, 0, 0]),
        ("kcmp(self, self)", nr("kcmp"), ["$pid", "$pid", 0, 0, 0]),
        ("userfaultfd(USER_MODE_ONLY)", nr("userfaultfd"), [1]),
        ("clock_adjtime(REALTIME, NULL)", nr("clock_adjtime"), [0, None]),
        ("clock_settime(REALTIME, NULL)", nr("clock_settime"), [0, None]),
        ("name_to_handle_at(/)", nr("name_to_handle_at"), [AT_FDCWD, "/", None, None, 0]),
        ("get_mempolicy(NULL)", nr("get_mempolicy"), [None, None, 0, 0, 0]),
        ("move_pages(self, 0 pages)", nr("move_pages"), [0, 0, None, None, None, 0]),
        ("personality(ADDR_NO_RANDOMIZE)", nr("personality"), [0x0040000]),
        ("socket(AF_VSOCK)", nr("socket"), [seccomp.AF_VSOCK, 1, 0]),
    ]
    # raw clone with each namespace flag; CLONE_NEWUSER makes the others possible without the filter
    for flag in seccomp.CLONE_NAMESPACE_FLAGS:
        probes.append(
            (f"clone(NEWUSER|{flag:#x})", nr("clone"), [CLONE_NEWUSER | flag | SIGCHLD, 0, 0, 0, 0])
        )
    return probes


def test_probes_fail_with_eperm_under_the_filter_and_not_without_it(bwrap: str) -> None:
    probes = discriminating_probes()
    with_filter = run_probes(bwrap, probes)
    without = run_probes(bwrap, probes, with_filter=False)
    assert {label: r for label, r in with_filter.items() if r != "EPERM"} == {}
    # without the filter none of them is EPERM (some kernels lack vsock: EAFNOSUPPORT is fine too)
    assert {label: r for label, r in without.items() if r == "EPERM"} == {}
    must_work_without = [
        "unshare(CLONE_NEWUSER)",
        "open_tree(/)",
        "keyctl(GET_KEYRING_ID)",
        "ptrace(TRACEME)",
        "process_vm_readv(self, 0 iovecs)",
        "userfaultfd(USER_MODE_ONLY)",
        "personality(ADDR_NO_RANDOMIZE)",
        *[label for label, _, _ in probes if label.startswith("clone(")],
    ]
    assert {label: without[label] for label in must_work_without} == dict.fromkeys(must_work_without, "ok")


def test_nested_user_namespace_is_refused(bwrap: str) -> None:
    denied = sandbox(bwrap, ["unshare", "-U", "-r", "id", "-u"])
    assert denied.returncode != 0
    assert "Operation not permitted" in denied.stderr
    # without the filter the same command gets uid 0 in a nested namespace: what the filter prevents
    allowed = sandbox(bwrap, ["unshare", "-U", "-r", "id", "-u"], with_filter=False)
    assert (allowed.returncode, allowed.stdout.strip()) == (0, "0")


def test_personality_allows_only_dockers_values(bwrap: str) -> None:
    allowed = list(seccomp.ALLOWED_PERSONALITIES)
    denied = [
        0x1,
        0x0040000,  # ADDR_NO_RANDOMIZE
        0x0100000,  # MMAP_PAGE_ZERO
        0x0400000,  # READ_IMPLIES_EXEC
        0x0040008,
        0x0020009,
        0x7FFFFFFF,
        0x80000000,
        0xFFFFFFFE,
        0x100000000,  # the kernel would see personality(0): denied too (high word set)
        0xFFFFFFFFFFFFFFFF,
    ]
    probes: list[Probe] = [(f"{v:#x}", nr("personality"), [v]) for v in allowed + denied]
    results = run_probes(bwrap, probes)
    assert results == {
        **{f"{v:#x}": "ok" for v in allowed},
        **{f"{v:#x}": "EPERM" for v in denied},
    }


# x86_64 machine code: `mov eax, N; <int 0x80 | syscall>; ret`, i.e. getpid through each ABI.
I386_GETPID = "b814000000cd80c3"  # eax=20 (i386 getpid), int 0x80
X32_GETPID = "b8270000400f05c3"  # eax=0x40000027 (x32 getpid = 39 | __X32_SYSCALL_BIT), syscall
NATIVE_GETPID = "b8270000000f05c3"  # eax=39, syscall


@pytest.mark.skipif(not X86_64, reason="the probes are x86_64 machine code")
def test_other_abis_are_killed_not_filtered_by_native_numbers(bwrap: str) -> None:
    probes: list[Probe] = [
        ("native", "code", NATIVE_GETPID),
        ("i386", "code", I386_GETPID),
        ("x32", "code", X32_GETPID),
    ]
    results = run_probes(bwrap, probes)
    assert results == {"native": "ok", "i386": "signal:SIGSYS", "x32": "signal:SIGSYS"}
    # The i386 ABI is live on most x86_64 kernels (here too, if this says ok): without the arch check its
    # numbers would bypass every rule. x32 is usually compiled out or disabled, which is fine either way.
    without = run_probes(bwrap, probes, with_filter=False)
    assert without["native"] == "ok"
    assert without["i386"] in ("ok", "signal:SIGSEGV")
    assert without["x32"] in ("ok", "signal:SIGSEGV")


# -- ordinary work still runs ------------------------------------------------------------------------


def test_python_threads_fork_and_subprocess_work(bwrap: str) -> None:
    code = (
        "import os, subprocess, threading, concurrent.futures as cf\n"
        "print(1)\n"
        "with cf.ThreadPoolExecutor(8) as ex: print(sum(ex.map(lambda x: x * x, range(100))))\n"
        "pid = os.fork()\n"
        "if pid == 0: os._exit(7)\n"
        "print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n"
        "print(subprocess.run(['sh', '-c', 'echo sub'], capture_output=True, text=True).stdout.strip())\n"
        "with cf.ProcessPoolExecutor(2) as ex: print(sum(ex.map(abs, range(-5, 0))))\n"
    )
    done = sandbox(bwrap, [PYTHON, "-c", code])
    assert (done.returncode, done.stdout.split(), done.stderr) == (0, ["1", "328350", "7", "sub", "15"], "")


def test_bash_pipelines_work_and_the_filter_is_loaded(bwrap: str) -> None:
    script = (
        "set -euo pipefail; printf 'b\\na\\nc\\n' | sort | tr a-z A-Z | head -2 | paste -sd,; "
        "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -s '\\t' ' '; "
        "ls /proc/self/fd | wc -l"
    )
    done = sandbox(bwrap, ["bash", "-c", script])
    assert done.returncode == 0, done.stderr
    # filter mode 2 (SECCOMP_MODE_FILTER) with no_new_privs; fds 0, 1, 2 and the one ls opened: the
    # memfd bwrap read the filter from did not leak into the sandbox
    assert done.stdout.split("\n")[:4] == ["A,B", "NoNewPrivs: 1", "Seccomp: 2", "4"]


def test_node_runs_with_threads_workers_and_child_processes(bwrap: str) -> None:
    if shutil.which("node") is None:
        pytest.fail("node is not installed: run scripts/setup.sh")
    js = (
        "const {Worker} = require('worker_threads');"
        "const cp = require('child_process');"
        "const fs = require('fs');"
        "console.log(1);"
        "console.log(cp.execSync('echo child').toString().trim());"
        "fs.writeFileSync('/tmp/f', 'data'); console.log(fs.readFileSync('/tmp/f', 'utf8'));"
        "fs.promises.readFile('/tmp/f', 'utf8').then(d => console.log('async ' + d));"
        "new Worker('require(\"worker_threads\").parentPort.postMessage(6 * 7)', {eval: true})"
        ".on('message', m => console.log('worker ' + m));"
    )
    done = sandbox(bwrap, ["node", "-e", js])
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split("\n")[:5]) == sorted(["1", "child", "data", "async data", "worker 42"])


# -- the fd handed to bwrap -----------------------------------------------------------------------------


def test_filter_fd_is_a_fresh_sealed_memfd_at_offset_zero() -> None:
    program = seccomp.bpf_program()
    assert seccomp.bpf_program() is program  # built once
    a, b = seccomp.filter_fd(), seccomp.filter_fd()
    try:
        assert a != b
        for fd in (a, b):
            assert os.lseek(fd, 0, os.SEEK_CUR) == 0
            assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC  # only pass_fds hands it on
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
            assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SEAL and seals & fcntl.F_SEAL_GROW
            with pytest.raises(PermissionError):
                os.write(fd, b"\0" * 8)
        assert os.read(a, len(program) + 1) == program
        assert os.lseek(b, 0, os.SEEK_CUR) == 0  # its own offset: reading a did not move b
    finally:
        os.close(a)
        os.close(b)


def test_bwrap_rejects_a_consumed_filter_fd(bwrap: str) -> None:
    """Why every launch needs its own fd: a consumed one reads as an empty program and bwrap fails."""

    def launch(consumed: bool) -> subprocess.CompletedProcess[str]:
        fd = seccomp.filter_fd()
        try:
            if consumed:
                os.read(fd, 1 << 20)
            return subprocess.run(
                [bwrap, "--ro-bind", "/", "/", "--seccomp", str(fd), "--", "true"],
                capture_output=True,
                text=True,
                pass_fds=(fd,),
                timeout=30,
            )
        finally:
            os.close(fd)

    assert launch(consumed=False).returncode == 0
    consumed = launch(consumed=True)
    assert consumed.returncode != 0
    assert "PR_SET_SECCOMP" in consumed.stderr


# -- failing closed ----------------------------------------------------------------------------------------


def test_missing_pyseccomp_or_libseccomp_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # import fails as if not installed
    with pytest.raises(seccomp.SeccompUnavailable, match="pyseccomp") as info:
        seccomp.compile_bpf()
    assert isinstance(info.value, seccomp.SandboxUnavailable)  # the runtime's start() fails with 503


def test_a_syscall_name_libseccomp_does_not_know_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seccomp, "DENIED_SYSCALLS", {"new": ("no_such_syscall_yet",)})
    with pytest.raises(seccomp.SeccompUnavailable, match="no_such_syscall_yet"):
        seccomp.compile_bpf()


# -- the BPF itself, by a tiny interpreter (all values, not just the ones a probe can try) ------------------

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_EPERM = 0x00050000 | errno.EPERM
RET_ENOSYS = 0x00050000 | errno.ENOSYS


def run_bpf(program: bytes, arch: int, nr: int, args: tuple[int, ...] = ()) -> int:
    """Evaluate classic seccomp BPF on struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6]}."""
    full = (*args, 0, 0, 0, 0, 0, 0)[:6]
    data = struct.pack("<iIQ6Q", nr, arch, 0, *[a & (2**64 - 1) for a in full])
    insns = [struct.unpack("<HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:  # and #k
            acc &= k
        elif code == 0x06:  # ret #k
            return k
        elif code in (0x15, 0x25, 0x35, 0x45):  # jeq, jgt, jge, jset #k
            ok = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if ok else jf
        elif code == 0x05:  # ja
            pc += k
        else:
            raise AssertionError(f"unexpected BPF opcode {code:#x} at {pc - 1}")


@pytest.mark.skipif(not X86_64, reason="x86_64 syscall numbers")
def test_bpf_decisions_for_arches_clone_personality_and_sockets() -> None:
    prog = seccomp.bpf_program()
    x86 = AUDIT_ARCH_X86_64
    assert run_bpf(prog, x86, 39) == RET_ALLOW  # getpid
    assert run_bpf(prog, x86, 250) == RET_EPERM  # keyctl
    assert run_bpf(prog, x86, 435) == RET_ENOSYS  # clone3
    assert run_bpf(prog, AUDIT_ARCH_I386, 20) == RET_KILL_PROCESS
    assert run_bpf(prog, x86, 0x40000000 | 39) == RET_KILL_PROCESS  # x32
    # clone: glibc's thread and fork flags pass, any namespace flag is refused
    thread_flags = 0x3D0F00  # CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT/CHILD_SETTID|CLEARTID
    assert run_bpf(prog, x86, 56, (thread_flags,)) == RET_ALLOW
    assert run_bpf(prog, x86, 56, (0x01200011,)) == RET_ALLOW  # fork: CHILD_SETTID|CHILD_CLEARTID|SIGCHLD
    for flag in seccomp.CLONE_NAMESPACE_FLAGS:
        assert run_bpf(prog, x86, 56, (flag | SIGCHLD,)) == RET_EPERM
        assert run_bpf(prog, x86, 56, (flag | thread_flags | 0xFFFFFFFF00000000,)) == RET_EPERM
    # personality: exactly the five allowed values pass
    allowed = set(seccomp.ALLOWED_PERSONALITIES)
    values = {1 << b for b in range(64)} | {(1 << b) - 1 for b in range(65)} | allowed
    values |= {a ^ (1 << b) for a in allowed for b in range(64)} | {a | (1 << 32) for a in allowed}
    values |= {int.from_bytes(os.urandom(4)) for _ in range(2000)}
    for value in values:
        expected = RET_ALLOW if value in allowed else RET_EPERM
        assert run_bpf(prog, x86, 135, (value,)) == expected, hex(value)
    assert run_bpf(prog, x86, 41, (seccomp.AF_VSOCK, 1, 0)) == RET_EPERM  # socket
    for family in (1, 2, 10, 16):  # AF_UNIX, AF_INET, AF_INET6, AF_NETLINK
        assert run_bpf(prog, x86, 41, (family, 1, 0)) == RET_ALLOW


def test_the_filter_builds_for_aarch64_too() -> None:
    prog = seccomp.compile_bpf(pyseccomp.Arch.AARCH64)
    arm = AUDIT_ARCH_AARCH64
    assert run_bpf(prog, arm, 172) == RET_ALLOW  # getpid
    assert run_bpf(prog, arm, 219) == RET_EPERM  # keyctl
    assert run_bpf(prog, arm, 97) == RET_EPERM  # unshare
    assert run_bpf(prog, arm, 435) == RET_ENOSYS  # clone3
    assert run_bpf(prog, arm, 220, (CLONE_NEWUSER | SIGCHLD,)) == RET_EPERM  # clone
    assert run_bpf(prog, arm, 220, (SIGCHLD,)) == RET_ALLOW
    assert run_bpf(prog, arm, 92, (0x0040000,)) == RET_EPERM  # personality
    assert run_bpf(prog, 0x40000028, 20) == RET_KILL_PROCESS  # AArch32 (AUDIT_ARCH_ARM)
