//! One rtnetlink request and its answer (a dump's every part), on a socket
//! of the calling thread's network namespace.
use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Send `msg` and collect the answers: every message of a dump (`dump`), or
/// the one reply of a get; an acknowledged change answers nothing.
pub fn request(msg: RouteNetlinkMessage, flags: Flags) -> io::Result<Vec<RouteNetlinkMessage>> {
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST
        | match flags {
            Flags::Dump => NLM_F_DUMP,
            Flags::Get => 0,
            Flags::Change(extra) => NLM_F_ACK | extra,
        };
    header.sequence_number = 1;
    let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    req.finalize();
    let mut buf = vec![0; req.buffer_len()];
    req.serialize(&mut buf);
    sock.send(&buf, 0)?;

    let mut out = Vec::new();
    loop {
        let (bytes, _) = sock.recv_from_full()?;
        let mut at = 0;
        while at < bytes.len() {
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[at..])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let len = msg.header.length as usize;
            let multipart = msg.header.flags & netlink_packet_core::NLM_F_MULTIPART != 0;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        None => Ok(out),
                        Some(_) => Err(e.to_io()),
                    };
                }
                NetlinkPayload::InnerMessage(m) => {
                    out.push(m);
                    if !multipart && !matches!(flags, Flags::Dump) {
                        return Ok(out);
                    }
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            at += len;
        }
    }
}

/// What a request is: a dump, a get of one object, or a change (with the
/// NLM_F_ flags it needs beside ACK, such as CREATE | EXCL).
#[derive(Clone, Copy, Debug)]
pub enum Flags {
    Dump,
    Get,
    Change(u16),
}
