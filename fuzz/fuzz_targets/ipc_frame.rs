//! The agent reads frames from any local process that can reach its socket, and the helper reads
//! the agent's answers. Arbitrary bytes must give an error, never a panic, and the length prefix
//! must never make the reader allocate more than the cap.
#![no_main]

use acr_proto::ipc::{decode, encode, read_frame, Envelope, FrameError, Response, MAX_FRAME};
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live heap bytes and their high-water mark, so the cap is checked on the real
/// allocations rather than on the code's intent.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    // The bytes as they arrive on the socket, header included.
    read_checked::<Envelope>(data);
    read_checked::<Response>(data);
    // The bytes as a body behind a correct header, so the JSON decoder sees all of them.
    if data.len() <= MAX_FRAME {
        let mut framed = (data.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(data);
        read_checked::<Envelope>(&framed);
        read_checked::<Response>(&framed);
    }
});

/// Reads one frame, checks the heap bound, and checks that a decoded value re-encodes stably.
fn read_checked<T: Serialize + DeserializeOwned>(stream: &[u8]) {
    let declared = stream
        .get(..4)
        .map(|h| u32::from_be_bytes(h.try_into().unwrap()) as usize);
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let result = read_frame::<T>(&mut &stream[..]);
    let extra = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    assert!(
        extra <= MAX_FRAME + 4,
        "reading a frame held {extra} heap bytes at once (cap {MAX_FRAME} + 4)"
    );
    if declared.is_some_and(|n| n > MAX_FRAME) {
        assert!(
            matches!(result, Err(FrameError::TooLarge(_))),
            "an over-cap length was not refused"
        );
        assert!(
            extra < 4096,
            "an over-cap frame still allocated {extra} bytes"
        );
    }
    let Ok(value) = result else {
        return;
    };
    let frame = encode(&value).expect("a decoded value re-encodes");
    let again: T = decode(&frame[4..]).expect("a re-encoded frame decodes");
    assert_eq!(
        encode(&again).expect("re-encodes twice"),
        frame,
        "frame encoding is not stable"
    );
}
