//! Ring-buffer records to events: every record starts with a u32 kind.
use profiler_common::{
    events::{Forward, KIND_FORWARD, KIND_SOCK_CLOSE, KIND_SOCK_OPEN, SockEvent},
    sock::SockInfo,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Forward(Forward),
    SockOpen(u64, SockInfo),
    SockClose(u64),
}

fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: length checked; T is a plain #[repr(C)] record of integers,
    // valid for any bit pattern; read_unaligned copes with any alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// None for a record too short for its kind, or of an unknown kind.
pub fn decode(bytes: &[u8]) -> Option<Event> {
    match read::<u32>(bytes)? {
        KIND_FORWARD => read::<Forward>(bytes).map(Event::Forward),
        KIND_SOCK_OPEN => read::<SockEvent>(bytes).map(|e| Event::SockOpen(e.sk, e.info)),
        KIND_SOCK_CLOSE => read::<SockEvent>(bytes).map(|e| Event::SockClose(e.sk)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<T>(v: &T) -> Vec<u8> {
        // SAFETY: viewing a plain record as bytes.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    #[test]
    fn kinds_round_trip() {
        let f = Forward {
            kind: KIND_FORWARD,
            tgid: 1,
            tid: 2,
            src_sk: 3,
            dst_sk: 4,
            arrival_ns: 5,
            read_ns: 6,
            write_ns: 7,
            bytes: 8,
            ..Forward::default()
        };
        assert_eq!(decode(&bytes(&f)), Some(Event::Forward(f)));
        let info = SockInfo {
            local_port: 15006,
            ..SockInfo::default()
        };
        let open = SockEvent {
            kind: KIND_SOCK_OPEN,
            _pad: 0,
            sk: 9,
            info,
        };
        assert_eq!(decode(&bytes(&open)), Some(Event::SockOpen(9, info)));
        let close = SockEvent {
            kind: KIND_SOCK_CLOSE,
            ..open
        };
        assert_eq!(decode(&bytes(&close)), Some(Event::SockClose(9)));
    }

    #[test]
    fn short_or_unknown_records_are_refused() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&KIND_FORWARD.to_ne_bytes()), None);
        assert_eq!(decode(&[9, 0, 0, 0, 0, 0, 0, 0]), None);
    }
}
