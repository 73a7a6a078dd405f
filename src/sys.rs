//! The only module with `unsafe`: two socket options no crate we use exposes, glibc's
//! `localtime_r` (the syslog header's local time), glibc's heap trim and `sendmmsg(2)` (a loop
//! turn's syslog datagrams in one call). `SO_RCVBUFFORCE` lets
//! the netlink receive buffer exceed `net.core.rmem_max` (needs CAP_NET_ADMIN), `SO_MEMINFO`
//! reads the socket's drop counter, which tells us that messages were lost even when the
//! kernel did not report ENOBUFS again, and `malloc_trim` hands the pages a storm's buffers
//! freed back to the kernel.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Index of the drop counter in the `SO_MEMINFO` array (`SK_MEMINFO_DROPS`).
const SK_MEMINFO_DROPS: usize = 8;
/// Number of u32 entries in the `SO_MEMINFO` array (`SK_MEMINFO_VARS`).
const SK_MEMINFO_VARS: usize = 9;

fn set_int(fd: BorrowedFd<'_>, opt: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `fd` is a live socket borrowed for the call; the option value points at a
    // c_int that outlives the call and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Set the receive buffer to `bytes`, bypassing `rmem_max` when privileged and falling back to
/// plain `SO_RCVBUF` otherwise. Returns the size the kernel reports back (twice the request).
pub fn set_rcvbuf(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<usize> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    if set_int(fd, libc::SO_RCVBUFFORCE, v).is_err() {
        set_int(fd, libc::SO_RCVBUF, v)?;
    }
    get_rcvbuf(fd)
}

pub fn get_rcvbuf(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes for the duration of the call and `len`
    // holds the size of `value`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(usize::try_from(value).unwrap_or(0))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The socket's cumulative drop counter (`SO_MEMINFO[SK_MEMINFO_DROPS]`).
pub fn socket_drops(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut info = [0u32; SK_MEMINFO_VARS];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is a writable array of `len` bytes that outlives the call; the kernel
    // writes at most `len` bytes and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if (len as usize) < (SK_MEMINFO_DROPS + 1) * 4 {
        return Err(io::Error::other("SO_MEMINFO reply too short"));
    }
    Ok(info[SK_MEMINFO_DROPS])
}

/// Most datagrams `send_datagrams` hands the kernel in one call.
pub const SEND_BATCH: usize = 64;

/// Send each of `lines` (at most `SEND_BATCH` are looked at) as one datagram on the connected
/// socket `fd`, without blocking, in one `sendmmsg(2)`. Returns how many the kernel took, in
/// order; an error only when it took none (`WouldBlock` when the receiver's queue is full).
pub fn send_datagrams(fd: BorrowedFd<'_>, lines: &[&[u8]]) -> io::Result<usize> {
    let n = lines.len().min(SEND_BATCH);
    if n == 0 {
        return Ok(0);
    }
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; SEND_BATCH];
    // SAFETY: an all-zero `mmsghdr` is a valid value of this plain C struct: no address, no
    // control data, no iovecs (set below).
    let mut hdr: [libc::mmsghdr; SEND_BATCH] = unsafe { std::mem::zeroed() };
    for ((line, v), h) in lines.iter().zip(iov.iter_mut()).zip(hdr.iter_mut()) {
        v.iov_base = line.as_ptr().cast_mut().cast();
        v.iov_len = line.len();
        h.msg_hdr.msg_iov = v;
        h.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `hdr[..n]` each point at one iovec of `iov`, each of which points at a line
    // borrowed for the duration of the call; the kernel only reads them (and writes each
    // header's `msg_len`). `fd` is a live socket borrowed for the call.
    let rc = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            hdr.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// Register a netlink socket with tokio's reactor.
pub fn register_async(
    sock: netlink_sys::Socket,
) -> io::Result<tokio::io::unix::AsyncFd<netlink_sys::Socket>> {
    // SAFETY: `netlink_sys::Socket` owns its file descriptor: it is open from `Socket::new`
    // until the socket is dropped (which only happens when the AsyncFd is dropped), and
    // `as_raw_fd` always returns that same descriptor.
    unsafe { tokio::io::unix::AsyncFd::register(sock) }.map_err(|e| e.into_parts().1)
}

/// Return free heap pages to the kernel (glibc `malloc_trim(0)`: every free page in the heap,
/// not only its top). glibc otherwise keeps a burst's freed buffers mapped for good, so the
/// resident size would stay at the storm's high-water mark. Does nothing on other C
/// libraries.
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes no pointers and only walks the allocator's own free lists,
    // under the allocator's lock; it is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Local wall-clock time for `secs` since the Unix epoch, as (month 0–11, day of month,
/// hour, minute, second), from glibc's `localtime_r` (TZ and /etc/localtime, as `syslog(3)`
/// uses). `None` if the C library cannot convert it.
pub fn local_time(secs: i64) -> Option<(usize, u32, u32, u32, u32)> {
    let t: libc::time_t = secs;
    // SAFETY: an all-zero `tm` is a valid value of this plain C struct (its `tm_zone` pointer
    // is null, and is only written by the call below, never read by us).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call; localtime_r is the
    // re-entrant variant and writes only into `tm`.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return None;
    }
    let u = |v: libc::c_int| u32::try_from(v).ok();
    Some((
        usize::try_from(tm.tm_mon).ok()?,
        u(tm.tm_mday)?,
        u(tm.tm_hour)?,
        u(tm.tm_min)?,
        u(tm.tm_sec)?,
    ))
}
