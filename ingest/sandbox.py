"""The reading process's sandbox: what a parser exploit could do, taken away first.

PDFium, lxml, python-docx, Pillow and Tesseract are large native code reading
untrusted bytes. The reading process (``ingest.reader_child``) calls ``apply``
before it reads a byte of any file; from then on, and in everything it starts,
the kernel refuses (``EPERM``; ``ENOSYS`` where a fallback is wanted):

- the network: ``socket``, ``socketpair``, ``connect``, ``bind``, ``listen``,
  ``accept``, ``send*``. The parent talks to the child over pipes (stdin and
  stdout), so no socket, not even AF_UNIX, is needed;
- starting programs: ``execve``, ``execveat`` (OCR: see ``ingest.ocr_broker``);
- other processes and the kernel's larger surfaces: ``ptrace``,
  ``process_vm_*``, ``pidfd_getfd``, ``mount`` and the new mount API, ``chroot``,
  ``setns``, ``unshare``, new namespaces through ``clone``, ``clone3`` (ENOSYS,
  so glibc falls back to ``clone``, whose flags are checked), ``bpf``,
  ``perf_event_open``, ``keyctl``, ``userfaultfd``, ``io_uring_*`` (it would run
  ``openat`` where seccomp does not look), modules, ``kexec``, ``TIOCSTI``;
- every change to the file system: ``open``/``openat`` with ``O_WRONLY``,
  ``O_RDWR``, ``O_CREAT`` or ``O_TRUNC``, ``creat``, ``openat2`` (its flags sit in
  a struct seccomp cannot read: ENOSYS, glibc falls back to ``openat``),
  ``unlink``, ``rename``, ``mkdir``, ``link``, ``symlink``, ``chmod``, ``chown``,
  ``truncate``, ``utimes``, ``mknod``, ``*xattr``.

No private temporary folder: seccomp cannot compare path strings, so "writes
only under this folder" would need Landlock or a mount namespace. Nothing in
the reading process needs one: parsers read from memory, and Tesseract reads
its picture from stdin and writes its words to stdout (``readers.ocr``). So no
file is opened for writing at all, a stronger rule than a folder, and one that
seccomp can check (a flag test on ``open``'s arguments).

The filter's default is to allow: an allow-list for CPython, glibc, PDFium,
lxml, numpy and OpenMP is long and changes with each of their releases (one
missing call kills every read on a user's newer system), while the rights a
parser exploit would want (network, programs, other processes, writing files,
the kernel's rarer entry points) are few and named above.

Also: ``PR_SET_NO_NEW_PRIVS`` (no set-uid gains, required by seccomp), an
environment reduced to a few locale and path variables by the parent
(``child_environment``: no tokens, no ``KBQA_API_KEY``), only the protocol's
file descriptors open, and the address-space limit the child had before.
Where the kernel or libseccomp lacks something, ``apply`` says which in its
report, the child writes it once to its log and the parent logs it once
(``ingest.reader_process``); reading goes on under the limits alone.

Not covered: reading the user's files (seccomp cannot tell paths apart; an
exploit could copy a readable file into the text it returns), signalling the
user's other processes, and CPU and memory beyond the time and address-space
limits. ``what_is_active`` reports what holds in the calling process; ``kbqa
doctor`` asks a real reading process (``report_request``).
"""

from __future__ import annotations

import ctypes
import errno
import importlib
import os
import resource
import sys
import types
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .limits import ParseLimits

_PR_SET_NO_NEW_PRIVS = 38
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C
_NAMESPACE_FLAGS = {  # clone(2) flags that would make a new namespace
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
_WRITE_FLAGS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC)

NETWORK = (
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    "sendto", "sendmsg", "sendmmsg",
)  # fmt: skip
PROGRAMS = ("execve", "execveat")
PROCESSES_AND_KERNEL = (
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    "mount", "umount2", "pivot_root", "chroot", "setns", "unshare",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "name_to_handle_at", "open_by_handle_at", "fanotify_init", "acct", "swapon", "swapoff",
    "reboot", "syslog", "quotactl", "iopl", "ioperm", "personality",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname",
    "setdomainname",
)  # fmt: skip
FILE_CHANGES = (
    "creat", "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat",
    "rmdir", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat",
    "fchmodat2", "chown", "fchown", "lchown", "fchownat", "truncate", "ftruncate",
    "utime", "utimes", "utimensat", "futimesat", "mknod", "mknodat",
    "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
)  # fmt: skip
FALL_BACK = ("clone3", "openat2")  # ENOSYS: glibc uses clone and openat, which are checked

# What the parent keeps of its environment for the reading process: locale, the
# program search path (tesseract), Tesseract's data folder and Python's path (where
# kbqa is not installed but put on it, as a Ray cluster's working folder may be).
KEPT_VARIABLES = (
    "PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TESSDATA_PREFIX", "PYTHONPATH",
)  # fmt: skip


@dataclass(frozen=True)
class Protection:
    """One protection of the reading process: whether it holds, and what it is or why not."""

    name: str
    active: bool
    detail: str


@dataclass(frozen=True)
class SandboxReport:
    protections: tuple[Protection, ...]

    @property
    def missing(self) -> tuple[Protection, ...]:
        return tuple(p for p in self.protections if not p.active)

    def to_dict(self) -> dict[str, Any]:
        return {"protections": [asdict(p) for p in self.protections]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SandboxReport:
        return cls(tuple(Protection(**p) for p in data.get("protections", [])))


def child_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """The reading process's environment: ``KEPT_VARIABLES`` only, no secrets.

    Python writes no bytecode there (it could not) and looks at no user folder.
    """
    kept = {name: environment[name] for name in KEPT_VARIABLES if name in environment}
    kept.setdefault("PATH", os.defpath)
    return {**kept, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"}


def apply(allow_programs: bool = False) -> SandboxReport:
    """NO_NEW_PRIVS and the seccomp filter on this process and all it starts.

    ``allow_programs``: ``execve`` stays allowed (for the OCR helper to fork
    before ``forbid_programs``); everything else is refused as for the reading
    process. Call before any thread starts (the filter is synchronized to
    threads, but one mid-call is not interrupted).
    """
    notes: list[Protection] = []
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            why = os.strerror(ctypes.get_errno())
            notes.append(Protection("no_new_privs", False, f"prctl failed: {why}"))
    except (OSError, AttributeError) as error:  # not Linux: no prctl
        notes.append(Protection("no_new_privs", False, f"no prctl here ({error})"))
    calls = NETWORK + PROCESSES_AND_KERNEL + FILE_CHANGES
    notes += _filter_notes(calls if allow_programs else calls + PROGRAMS, arguments=True)
    return _report(notes)


def forbid_programs(notes: SandboxReport | None = None) -> SandboxReport:
    """A second, small filter on this process only: ``execve`` and ``execveat`` refused.

    Filters stack: a process forked after ``apply(allow_programs=True)`` and
    before this keeps the first filter alone (the OCR helper).
    """
    earlier = list(notes.protections) if notes else []
    return _report(earlier + _filter_notes(PROGRAMS, arguments=False))


def _filter_notes(calls: tuple[str, ...], arguments: bool) -> list[Protection]:
    try:
        skipped = _load_filter(calls, arguments)
    except (ImportError, RuntimeError, OSError) as error:  # no libseccomp, or no kernel support
        return [Protection("seccomp", False, f"not applied ({type(error).__name__}: {error})")]
    if not skipped:
        return []
    vital = set(NETWORK + PROGRAMS + ("openat",))
    active = not vital.intersection(skipped)
    return [Protection("seccomp_calls", active, f"not known here: {', '.join(skipped)}")]


def _report(notes: list[Protection]) -> SandboxReport:
    """``what_is_active``, with what the kernel cannot show (why a part is missing)."""
    report = what_is_active()
    named = {p.name for p in report.protections}
    merged = [
        next((n for n in notes if n.name == p.name and not n.active), p) for p in report.protections
    ]
    seen = set()
    extra = []
    for note in notes:
        if note.name not in named and note.name not in seen:
            seen.add(note.name)
            extra.append(note)
    return SandboxReport(tuple(merged + extra))


def _seccomp() -> Any:
    """pyseccomp, imported without ``ctypes.util``.

    pyseccomp finds libc and libseccomp with ``ctypes.util.find_library``, whose
    import (subprocess, tempfile, shutil) and ``ldconfig -p`` run cost each
    reading process 6 ms or more; on Linux their sonames are known. Where
    ``libseccomp.so.2`` does not load by that name, the real lookup is used.
    """
    if "pyseccomp" in sys.modules:
        return sys.modules["pyseccomp"]
    if "ctypes.util" not in sys.modules:
        known = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}
        lookup = types.ModuleType("ctypes.util")
        lookup.find_library = known.get  # type: ignore[attr-defined]
        sys.modules["ctypes.util"] = lookup
        ctypes.util = lookup  # type: ignore[attr-defined]
        try:
            return importlib.import_module("pyseccomp")
        except OSError:  # another soname: the real lookup below
            sys.modules.pop("pyseccomp", None)
        finally:
            del sys.modules["ctypes.util"]
            del ctypes.util  # type: ignore[attr-defined]
    importlib.import_module("ctypes.util")  # the real lookup, for pyseccomp
    return importlib.import_module("pyseccomp")


def _load_filter(calls: tuple[str, ...], arguments: bool) -> list[str]:
    """Build and load a filter; the names this system's libseccomp does not know.

    ``arguments``: also the rules that look at arguments (open flags, clone
    flags, ioctl requests) and the calls refused with ENOSYS.
    """
    seccomp = _seccomp()
    deny = seccomp.ERRNO(errno.EPERM)
    rules: list[tuple[int, str, tuple[Any, ...]]] = [(deny, name, ()) for name in calls]
    if arguments:
        rules += [(seccomp.ERRNO(errno.ENOSYS), name, ()) for name in FALL_BACK]
        # open(path, flags), openat(dir, path, flags): refused with any flag that writes
        for flag in _WRITE_FLAGS:
            rules.append((deny, "open", (seccomp.Arg(1, seccomp.MASKED_EQ, flag, flag),)))
            rules.append((deny, "openat", (seccomp.Arg(2, seccomp.MASKED_EQ, flag, flag),)))
        for flag in _NAMESPACE_FLAGS.values():
            rules.append((deny, "clone", (seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag),)))
        for request in (_TIOCSTI, _TIOCLINUX):  # typing into the user's terminal
            mask = seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, request)
            rules.append((deny, "ioctl", (mask,)))

    check = seccomp.SyscallFilter(seccomp.ALLOW)
    check.set_attr(seccomp.Attr.CTL_TSYNC, 1)
    try:  # a binary tree of calls instead of a list: fewer checks per call
        check.set_attr(seccomp.Attr.CTL_OPTIMIZE, 2)
    except OSError:  # libseccomp before 2.5
        pass
    skipped: list[str] = []
    for action, name, args in rules:
        try:  # calls this architecture lacks (open on arm64) are accepted and ignored
            check.add_rule(action, name, *args)
        except OSError:  # a name older libseccomp does not know
            if name not in skipped:
                skipped.append(name)
    check.load()
    return skipped


def what_is_active() -> SandboxReport:
    """What holds in this process now: read from the kernel, not assumed."""
    status = _proc_status()
    seccomp_mode = status.get("Seccomp", "?")
    secrets = sorted(n for n in os.environ if n not in KEPT_VARIABLES and _looks_secret(n))
    kept = set(KEPT_VARIABLES) | {"PYTHONDONTWRITEBYTECODE", "PYTHONNOUSERSITE", "OMP_THREAD_LIMIT"}
    others = sorted(n for n in os.environ if n not in kept)
    descriptors = _open_descriptors()
    memory, _hard = resource.getrlimit(resource.RLIMIT_AS)
    return SandboxReport(
        (
            Protection(
                "seccomp",
                seccomp_mode == "2",
                f"Seccomp: {seccomp_mode}, filters: {status.get('Seccomp_filters', '?')}",
            ),
            Protection(
                "no_new_privs", status.get("NoNewPrivs") == "1", "set-uid programs gain nothing"
            ),
            Protection(
                "environment",
                not secrets and not others,
                "only locale and path variables"
                if not others
                else "also " + ", ".join(others[:8]) + ("…" if len(others) > 8 else ""),
            ),
            Protection(
                "descriptors",
                len(descriptors) <= 8,
                f"{len(descriptors)} open: {', '.join(map(str, descriptors[:12]))}",
            ),
            Protection(
                "memory_limit",
                memory != resource.RLIM_INFINITY,
                "no address-space limit"
                if memory == resource.RLIM_INFINITY
                else f"{memory // (1024 * 1024):,} MB of address space",
            ),
        )
    )


def _looks_secret(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL"))


def _proc_status() -> dict[str, str]:
    try:
        with open("/proc/self/status") as status:
            lines = status.read().splitlines()
    except OSError:
        return {}
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    return {key: value.strip() for key, value in pairs}


def _open_descriptors() -> list[int]:
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    alive = []
    for name in names:
        fd = int(name)
        try:
            os.fstat(fd)  # the listing's own descriptor is gone by now
        except OSError:
            continue
        alive.append(fd)
    return sorted(alive)


def report_request(
    args: dict[str, Any], payload: bytes, limits: ParseLimits
) -> tuple[dict[str, Any], bytes]:
    """For ``ParseWorker.call``: the reading process's ``what_is_active`` and its helper's."""
    report = what_is_active()
    return SandboxReport((*report.protections, _helper_protection())).to_dict(), b""


def _helper_protection() -> Protection:
    """The OCR helper (this process's child, ``ingest.ocr_broker``) as the kernel shows it."""
    children: list[str] = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as listed:
                children += listed.read().split()
    except OSError as error:
        return Protection("ocr_helper", False, f"cannot be seen ({error.strerror})")
    if not children:
        return Protection("ocr_helper", True, "none: no Tesseract here, so no OCR")
    states = []
    for pid in children:
        try:
            with open(f"/proc/{pid}/status") as status:
                pairs = (line.split(":", 1) for line in status if ":" in line)
                fields = {key: value.strip() for key, value in pairs}
        except OSError:
            continue
        states.append((fields.get("Seccomp"), fields.get("NoNewPrivs")))
    confined = bool(states) and all(state == ("2", "1") for state in states)
    detail = "Seccomp: 2, NoNewPrivs: 1; may start tesseract only" if confined else str(states)
    return Protection("ocr_helper", confined, detail)
