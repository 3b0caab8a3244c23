//! Every map the programs use; names and sizes come from profiler-common.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
};
use profiler_common::{
    edge::{FlowKey, SockEdge},
    loopback::LoopKey,
    maps::{
        ARRIVALS_MAX, COUNTERS_LEN, Counter, ENTRY_ARGS_MAX, PROXY_PORTS_MAX, TRACKED_MAX, filter,
    },
    ring::{BPF_F_MMAPABLE, RING_SLOTS_MIN, Record, RingCtl},
    sched::{THREAD_SCHED_MAX, ThreadBits, ThreadSched},
    slots::{Arrival, SOCK_SLOTS_LEN, SockSlot},
};

#[map(name = "TRACKED_FILTER")]
pub static TRACKED_FILTER: Array<u32> = Array::with_max_entries(filter::LEN, 0);

#[map(name = "TRACKED")]
pub static TRACKED: HashMap<u32, u32> = HashMap::with_max_entries(TRACKED_MAX, 0);

#[map(name = "PROXY_PORTS")]
pub static PROXY_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(PROXY_PORTS_MAX, 0);

#[map(name = "SOCK_SLOTS")]
pub static SOCK_SLOTS: Array<SockSlot> = Array::with_max_entries(SOCK_SLOTS_LEN, 0);

#[map(name = "SOCK_ARRIVALS")]
pub static SOCK_ARRIVALS: Array<Arrival> = Array::with_max_entries(SOCK_SLOTS_LEN, 0);

// Sized in full by userspace only when the classifiers run.
#[map(name = "EDGE_FLOWS")]
pub static EDGE_FLOWS: LruHashMap<FlowKey, u64> = LruHashMap::with_max_entries(1, 0);

#[map(name = "SOCK_EDGE")]
pub static SOCK_EDGE: Array<SockEdge> = Array::with_max_entries(1, 0);

#[map(name = "SOCK_EDGE_SPILL")]
pub static SOCK_EDGE_SPILL: LruHashMap<u64, SockEdge> = LruHashMap::with_max_entries(1, 0);

// Never written: what a new spilled entry is copied from. A map value, not
// a value on the stack, which the state hook on 6.1 has no room left for.
#[map(name = "SOCK_EDGE_BLANK")]
pub static SOCK_EDGE_BLANK: Array<SockEdge> = Array::with_max_entries(1, 0);

#[map(name = "LOOP_PEERS")]
pub static LOOP_PEERS: LruHashMap<LoopKey, u64> = LruHashMap::with_max_entries(1, 0);

#[map(name = "LOOP_SEEKING")]
pub static LOOP_SEEKING: Array<i64> = Array::with_max_entries(1, 0);

#[map(name = "LOOP_LAST_RX")]
pub static LOOP_LAST_RX: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "ARRIVALS")]
pub static ARRIVALS: LruHashMap<u64, Arrival> = LruHashMap::with_max_entries(ARRIVALS_MAX, 0);

// Sized here for one CPU; userspace sizes both for the machine at load.
#[map(name = "RING_CTL")]
pub static RING_CTL: Array<RingCtl> = Array::with_max_entries(1, BPF_F_MMAPABLE);

#[map(name = "RING")]
pub static RING: Array<Record> = Array::with_max_entries(RING_SLOTS_MIN, BPF_F_MMAPABLE);

#[map(name = "COUNTERS")]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS_LEN, 0);

#[map(name = "ENTRY_ARGS")]
pub static ENTRY_ARGS: HashMap<u32, u64> = HashMap::with_max_entries(ENTRY_ARGS_MAX, 0);

#[map(name = "THREAD_FILTER")]
pub static THREAD_FILTER: Array<ThreadBits> = Array::with_max_entries(1, 0);

#[map(name = "THREAD_SCHED")]
pub static THREAD_SCHED: HashMap<u32, ThreadSched> = HashMap::with_max_entries(THREAD_SCHED_MAX, 0);

#[inline(always)]
pub fn count(c: Counter) {
    if let Some(p) = COUNTERS.get_ptr_mut(c as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
}
