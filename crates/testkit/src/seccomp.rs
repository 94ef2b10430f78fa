//! A seccomp filter that makes the kernel keyring calls (`add_key`, `request_key`, `keyctl`)
//! fail with EPERM, as Docker's default seccomp profile does inside containers. Installed in a
//! child between fork and exec ([`deny_keyring`]), it covers the program and everything it
//! starts (the agent it auto-starts inherits it), without a container runtime.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

// Classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
/// Offset of `nr` in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: BPF_JMP_JEQ_K,
        jt,
        jf,
        k,
    }
}

/// Installs the filter in the calling process (no-new-privs first, as seccomp requires for an
/// unprivileged caller). Only async-signal-safe calls: usable between fork and exec.
pub fn install_keyring_denial() -> io::Result<()> {
    let deny = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    let filter = [
        stmt(BPF_LD_W_ABS, NR_OFFSET),
        jeq(libc::SYS_add_key as u32, 3, 0),
        jeq(libc::SYS_request_key as u32, 2, 0),
        jeq(libc::SYS_keyctl as u32, 1, 0),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
        stmt(BPF_RET_K, deny),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with valid arguments; `prog` and `filter` outlive the call, and the kernel
    // copies the program.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Makes `cmd` run under [`install_keyring_denial`].
pub fn deny_keyring(cmd: &mut Command) -> &mut Command {
    // SAFETY: the hook only calls prctl(2), which is async-signal-safe.
    unsafe { cmd.pre_exec(install_keyring_denial) }
}
