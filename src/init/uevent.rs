//! Kernel uevents over netlink: the socket, and a parser for its messages.
//! What to do with an event (load a module, fix a device node's group, open
//! an input device) is decided in the main loop.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, socket,
};

/// The fields of one uevent that init uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uevent {
    pub action: String,
    pub devpath: String,
    pub subsystem: String,
    pub modalias: Option<String>,
    /// The node under `/dev`, such as `video0` or `snd/pcmC0D0c`.
    pub devname: Option<String>,
}

/// Parses a kernel uevent (`ACTION@DEVPATH\0KEY=VALUE\0...`). Messages from
/// udev (starting `libudev`) and anything malformed give `None`.
pub fn parse(buf: &[u8]) -> Option<Uevent> {
    let mut fields = buf.split(|b| *b == 0).map(String::from_utf8_lossy);
    let header = fields.next()?;
    if !header.contains('@') {
        return None;
    }
    let mut ev = Uevent::default();
    for field in fields {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        let value = value.to_string();
        match key {
            "ACTION" => ev.action = value,
            "DEVPATH" => ev.devpath = value,
            "SUBSYSTEM" => ev.subsystem = value,
            "MODALIAS" => ev.modalias = Some(value),
            "DEVNAME" => ev.devname = Some(value),
            _ => {}
        }
    }
    if ev.action.is_empty() {
        return None;
    }
    Some(ev)
}

/// Opens the kernel's uevent multicast group, non-blocking.
pub fn open() -> nix::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkKObjectUEvent,
    )?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 1))?;
    Ok(fd)
}

/// Reads every waiting uevent.
pub fn read_all(fd: &OwnedFd) -> Vec<Uevent> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    // Bounded, so a flood of events cannot keep the loop here.
    for _ in 0..256 {
        match recv(
            fd.as_raw_fd(),
            &mut buf,
            nix::sys::socket::MsgFlags::empty(),
        ) {
            Ok(n) if n > 0 => {
                if let Some(ev) = buf.get(..n).and_then(parse) {
                    out.push(ev);
                }
            }
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_usb_camera() {
        let msg = b"add@/devices/platform/usb/1-1:1.0\0ACTION=add\0DEVPATH=/devices/platform/usb/1-1:1.0\0SUBSYSTEM=usb\0MODALIAS=usb:v046Dp0825d0012dcEFdsc02dp01ic0Eisc01ip00in00\0SEQNUM=1234\0";
        let ev = parse(msg).unwrap();
        assert_eq!(ev.action, "add");
        assert_eq!(ev.subsystem, "usb");
        assert_eq!(
            ev.modalias.as_deref(),
            Some("usb:v046Dp0825d0012dcEFdsc02dp01ic0Eisc01ip00in00")
        );
        assert_eq!(ev.devname, None);
    }

    #[test]
    fn parses_a_device_node() {
        let msg = b"add@/devices/virtual/video4linux/video0\0ACTION=add\0SUBSYSTEM=video4linux\0DEVNAME=video0\0MAJOR=81\0";
        let ev = parse(msg).unwrap();
        assert_eq!(ev.devname.as_deref(), Some("video0"));
        assert_eq!(ev.subsystem, "video4linux");
    }

    #[test]
    fn ignores_udev_and_garbage() {
        assert_eq!(parse(b"libudev\0\xfe\xed\xca\xfe"), None);
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"add@/x\0NOEQUALS\0"), None);
        assert!(parse(b"remove@/x\0ACTION=remove\0\xff\xfe=\0").is_some());
    }
}
