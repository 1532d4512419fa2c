"""A seccomp filter for bwrap when no cgroup can limit memory: memory that no rlimit or sized
tmpfs counts (memfd_create, SysV shared memory, memfd_secret) is refused with ENOSYS, which
programs treat as "not supported here" and fall back from.

Built as raw classic BPF (no libseccomp needed) for x86_64 and aarch64; on other architectures
`program()` returns None and the gap is reported by `k2lsp doctor` instead.
"""

from __future__ import annotations

import os
import platform
import struct

# BPF opcodes (linux/filter.h) and seccomp constants (linux/seccomp.h, linux/audit.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_ENOSYS = 38
_X32_BIT = 0x40000000

# arch -> (AUDIT_ARCH value, syscall numbers refused)
_ARCHES = {
    "x86_64": (0xC000003E, {"memfd_create": 319, "shmget": 29, "memfd_secret": 447}),
    "aarch64": (0xC00000B7, {"memfd_create": 279, "shmget": 194, "memfd_secret": 447}),
}
REFUSED = ("memfd_create", "shmget", "memfd_secret")


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program() -> bytes | None:
    """The compiled filter for this machine's architecture, or None when unsupported."""
    arch = _ARCHES.get(platform.machine())
    if arch is None:
        return None
    audit, numbers = arch
    nrs = [numbers[name] for name in REFUSED]
    deny = _insn(_RET_K, 0, 0, _RET_ERRNO | _ENOSYS)
    allow = _insn(_RET_K, 0, 0, _RET_ALLOW)
    body = [_insn(_LD_W_ABS, 0, 0, 4), _insn(_JEQ_K, 1, 0, audit), allow]
    body.append(_insn(_LD_W_ABS, 0, 0, 0))
    checks = [(_JGE_K, _X32_BIT)] if audit == 0xC000003E else []
    checks += [(_JEQ_K, nr) for nr in nrs]
    for i, (code, k) in enumerate(checks):
        remaining = len(checks) - i - 1
        body.append(_insn(code, remaining + 1, 0, k))  # match: jump over the rest and ALLOW
    body += [allow, deny]
    return b"".join(body)


def program_fd() -> int | None:
    """A readable fd holding the filter (bwrap --seccomp FD), or None when unsupported."""
    data = program()
    if data is None:
        return None
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    os.close(write_fd)
    return read_fd
