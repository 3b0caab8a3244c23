//! Ring records to events (every record starts with a u32 kind), and the
//! time order the CPUs' rings are merged in.
use profiler_common::{
    edge::{EdgeIn, KIND_EDGE_IN},
    events::{
        Io, KIND_CONNECT, KIND_READ, KIND_RUNNABLE_WAIT, KIND_SOCK_CLOSE, KIND_SOCK_OPEN,
        KIND_WRITE, RunnableWait, SockEvent,
    },
    ring::Record,
    sock::SockInfo,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Read(Io),
    Write(Io),
    Connect(Io),
    SockOpen {
        sk: u64,
        info: SockInfo,
        at: u64,
    },
    SockClose {
        sk: u64,
        at: u64,
    },
    /// A followed thread got a CPU after waiting runnable.
    RunnableWait(RunnableWait),
    /// The data a read of `sk` at `at` took passed the pod edge.
    EdgeIn(EdgeIn),
}

impl Event {
    /// When it happened; at one instant an open comes first (a read's or
    /// write's own open is reported with its time) and a close last.
    pub fn order(&self) -> (u64, u8) {
        match self {
            // Before the read it belongs to, which has the same time.
            Event::SockOpen { at, .. } | Event::EdgeIn(EdgeIn { at_ns: at, .. }) => (*at, 0),
            Event::Read(io) | Event::Write(io) | Event::Connect(io) => (io.at_ns, 1),
            Event::RunnableWait(w) => (w.at_ns, 1),
            Event::SockClose { at, .. } => (*at, 2),
        }
    }
}

/// Records from all CPUs, in the order they happened: each CPU's ring is in
/// its own order, but a thread that read on one CPU may write on another.
/// `order` gets one key per event, sorted: its time, its rank at that time
/// and its position in `events`, so one CPU's records at one instant keep
/// their order. Keys, not the events, are sorted: a key is 16 bytes and an
/// event 72, and sorting events took about a fifth of the daemon's time
/// with the pod edge's stamps, which break the CPUs' ordered runs.
pub fn time_order(events: &[Event], order: &mut Vec<u128>) {
    order.clear();
    order.extend(events.iter().enumerate().map(|(i, e)| {
        let (at, rank) = e.order();
        u128::from(at) << 64 | u128::from(rank) << 32 | i as u128
    }));
    // Stable for its run detection (each CPU's records come nearly in order),
    // not for ties: the positions make every key distinct.
    order.sort();
}

/// When the event a [`time_order`] key names happened.
pub const fn key_time(key: u128) -> u64 {
    (key >> 64) as u64
}

/// The position in `events` of the event a [`time_order`] key names.
pub const fn key_index(key: u128) -> usize {
    key as u32 as usize
}

/// `events` in the order [`time_order`] gives.
#[cfg(test)]
pub fn in_time_order(events: &[Event]) -> Vec<Event> {
    let mut order = Vec::new();
    time_order(events, &mut order);
    order.iter().map(|&k| events[key_index(k)]).collect()
}

pub fn decode_record(r: &Record) -> Option<Event> {
    // SAFETY: a Record is plain integers; viewed as its bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts((r as *const Record).cast::<u8>(), size_of::<Record>())
    };
    decode(bytes)
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
        KIND_READ => read::<Io>(bytes).map(Event::Read),
        KIND_WRITE => read::<Io>(bytes).map(Event::Write),
        KIND_CONNECT => read::<Io>(bytes).map(Event::Connect),
        KIND_SOCK_OPEN => read::<SockEvent>(bytes).map(|e| Event::SockOpen {
            sk: e.sk,
            info: e.info,
            at: e.at_ns,
        }),
        KIND_SOCK_CLOSE => read::<SockEvent>(bytes).map(|e| Event::SockClose {
            sk: e.sk,
            at: e.at_ns,
        }),
        KIND_RUNNABLE_WAIT => read::<RunnableWait>(bytes).map(Event::RunnableWait),
        KIND_EDGE_IN => read::<EdgeIn>(bytes).map(Event::EdgeIn),
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
        let f = Io {
            kind: KIND_READ,
            tgid: 1,
            tid: 2,
            sk: 3,
            at_ns: 6,
            arrival_ns: 5,
            bytes: 8,
            ..Io::default()
        };
        assert_eq!(decode(&bytes(&f)), Some(Event::Read(f)));
        let w = Io {
            kind: KIND_WRITE,
            ..f
        };
        assert_eq!(decode(&bytes(&w)), Some(Event::Write(w)));
        let info = SockInfo {
            local_port: 15006,
            ..SockInfo::default()
        };
        let open = SockEvent {
            kind: KIND_SOCK_OPEN,
            _pad: 0,
            sk: 9,
            at_ns: 11,
            info,
        };
        assert_eq!(
            decode(&bytes(&open)),
            Some(Event::SockOpen {
                sk: 9,
                info,
                at: 11
            })
        );
        let close = SockEvent {
            kind: KIND_SOCK_CLOSE,
            ..open
        };
        assert_eq!(
            decode(&bytes(&close)),
            Some(Event::SockClose { sk: 9, at: 11 })
        );
        let wait = RunnableWait {
            kind: KIND_RUNNABLE_WAIT,
            tgid: 1,
            tid: 2,
            _pad: 0,
            at_ns: 12,
            wait_ns: 13,
        };
        assert_eq!(decode(&bytes(&wait)), Some(Event::RunnableWait(wait)));
        // Through a ring slot: the record is the struct's bytes, zero-padded.
        let mut rec = Record::default();
        // SAFETY: Io fits in a Record (asserted in profiler_common::ring).
        unsafe { (&raw mut rec).cast::<Io>().write(f) };
        assert_eq!(decode_record(&rec), Some(Event::Read(f)));
    }

    fn fwd(sk: u64, at_ns: u64) -> Event {
        Event::Write(Io {
            kind: KIND_WRITE,
            sk,
            at_ns,
            ..Io::default()
        })
    }

    #[test]
    fn merged_rings_replay_socket_lifetimes_in_order() {
        // CPU 0 saw the old socket's close and the forward on the new one;
        // CPU 1 saw the open of the new socket at the same address. Drained
        // CPU by CPU, the forward would precede the open it needs.
        let info = SockInfo::default();
        let evs = vec![
            Event::SockClose { sk: 5, at: 100 },
            fwd(5, 300),
            Event::SockOpen {
                sk: 5,
                info,
                at: 200,
            },
            // A write that opened its destination reports both at one instant.
            fwd(6, 400),
            Event::SockOpen {
                sk: 6,
                info,
                at: 400,
            },
            Event::SockClose { sk: 6, at: 400 },
        ];
        assert_eq!(
            in_time_order(&evs),
            [
                Event::SockClose { sk: 5, at: 100 },
                Event::SockOpen {
                    sk: 5,
                    info,
                    at: 200
                },
                fwd(5, 300),
                Event::SockOpen {
                    sk: 6,
                    info,
                    at: 400
                },
                fwd(6, 400),
                Event::SockClose { sk: 6, at: 400 },
            ]
        );
    }

    #[test]
    fn events_at_one_instant_keep_the_order_they_came_in() {
        // A CPU's own records at one instant (a read and the write it
        // caused, both stamped alike), behind an event left from before.
        let evs = [fwd(9, 500), fwd(7, 300), fwd(8, 300), fwd(6, 300)];
        let sks: Vec<u64> = in_time_order(&evs)
            .iter()
            .map(|e| match e {
                Event::Write(io) => io.sk,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(sks, [7, 8, 6, 9]);
    }

    #[test]
    fn short_or_unknown_records_are_refused() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&KIND_READ.to_ne_bytes()), None);
        assert_eq!(decode(&[9, 0, 0, 0, 0, 0, 0, 0]), None);
    }
}
