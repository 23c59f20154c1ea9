//! Host calls that report failure instead of panicking.
//!
//! The SDK's `hostcalls` and trait helpers panic on any unexpected status (and
//! `get_map_value` also on a non-UTF-8 header), and a panic aborts the VM for every stream on
//! the worker (envoy-wasm.md §8.7). These wrappers call the same ABI functions and turn every
//! status other than `Ok` into `None` or `false`. Buffers the host returns were allocated
//! through the SDK's `proxy_on_memory_allocate` (a boxed byte slice of exactly that length), so
//! they are taken over with `Vec::from_raw_parts(ptr, len, len)`, as the SDK itself does.
//!
//! The callout itself goes through `proxy_wasm::hostcalls::dispatch_http_call`: the SDK must
//! register the token to route the answer back, and that call only panics on statuses Envoy does
//! not return for it.

// The SDK declares these imports with its `#[repr(u32)]` enums; here every argument and result
// is a plain u32, so an unexpected status from the host is a number, never an invalid enum.
#![allow(clashing_extern_declarations)]

use std::ptr::{null, null_mut};

use proxy_wasm::types::{BufferType, MapType, MetricType, Status, StreamType};

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
}

const OK: u32 = Status::Ok as u32;

/// Takes ownership of a buffer the host allocated for us.
///
/// # Safety
/// `data` must be null or point to `size` bytes allocated by `proxy_on_memory_allocate`.
unsafe fn take_buffer(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        return Vec::new();
    }
    // SAFETY: per the contract above, the allocation is a boxed slice of exactly `size` bytes
    // with alignment 1, which is the layout of a Vec<u8> of that length and capacity.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

/// A property path in the host's encoding: the parts joined by NUL.
fn property_path(path: &[&str]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

/// Reads a property; `None` when absent or on any failure.
pub fn get_property(path: &[&str]) -> Option<Vec<u8>> {
    let path = property_path(path);
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: the pointers are valid for the call; the host writes a buffer it allocated.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    // SAFETY: on Ok the host hands over a buffer from our allocator (or null).
    (status == OK).then(|| unsafe { take_buffer(data, size) })
}

/// Writes a property (filter state `wasm.<name>` for a one-part path).
pub fn set_property(path: &[&str], value: &[u8]) -> bool {
    let path = property_path(path);
    // SAFETY: both buffers are valid for the duration of the call.
    let status =
        unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) };
    status == OK
}

/// Reads the first value of a header; `None` when absent or on any failure.
pub fn get_header(map: MapType, name: &str) -> Option<Vec<u8>> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: the pointers are valid for the call.
    let status = unsafe {
        proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut data, &mut size)
    };
    // SAFETY: on Ok the host hands over a buffer from our allocator (or null).
    (status == OK).then(|| unsafe { take_buffer(data, size) })
}

/// Reads every header of a map, repeated names included.
pub fn get_headers(map: MapType) -> Option<Vec<(String, Vec<u8>)>> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: the pointers are valid for the call.
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    if status != OK {
        return None;
    }
    // SAFETY: on Ok the host hands over a buffer from our allocator (or null).
    let bytes = unsafe { take_buffer(data, size) };
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let pairs = gitgate_core::pairs::decode(&bytes).ok()?;
    Some(
        pairs
            .into_iter()
            .map(|(name, value)| (String::from_utf8_lossy(name).into_owned(), value.to_vec()))
            .collect(),
    )
}

/// Sets a header, replacing any value it had.
pub fn replace_header(map: MapType, name: &str, value: &str) -> bool {
    // SAFETY: both buffers are valid for the duration of the call.
    let status = unsafe {
        proxy_replace_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    };
    status == OK
}

/// Removes a header (every value of it); true also when it was absent.
pub fn remove_header(map: MapType, name: &str) -> bool {
    // SAFETY: the name buffer is valid for the duration of the call.
    let status = unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) };
    status == OK
}

/// Reads up to `max_size` bytes of a buffer from `start`; `None` on failure, empty when the
/// buffer is empty or absent.
pub fn get_buffer(buffer: BufferType, start: usize, max_size: usize) -> Option<Vec<u8>> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: the pointers are valid for the call.
    let status =
        unsafe { proxy_get_buffer_bytes(buffer as u32, start, max_size, &mut data, &mut size) };
    match status {
        // SAFETY: on Ok the host hands over a buffer from our allocator (or null).
        OK => Some(unsafe { take_buffer(data, size) }),
        s if s == Status::NotFound as u32 => Some(Vec::new()),
        _ => None,
    }
}

/// Replaces `size` bytes from `start` with `value`. Envoy accepts only `start == 0` (drain then
/// prepend) or `start >= length` (append) (envoy-wasm.md §1.4).
pub fn set_buffer(buffer: BufferType, start: usize, size: usize, value: &[u8]) -> bool {
    // SAFETY: the value buffer is valid for the duration of the call.
    let status =
        unsafe { proxy_set_buffer_bytes(buffer as u32, start, size, value.as_ptr(), value.len()) };
    status == OK
}

/// Sends a local reply.
pub fn send_response(status: u32, headers: &[(&str, &str)], body: &[u8]) -> bool {
    let pairs: Vec<(&[u8], &[u8])> = headers
        .iter()
        .map(|(name, value)| (name.as_bytes(), value.as_bytes()))
        .collect();
    let headers = gitgate_core::pairs::encode(&pairs);
    // SAFETY: all buffers are valid for the duration of the call; -1 means no gRPC status.
    let result = unsafe {
        proxy_send_local_response(
            status,
            null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    };
    result == OK
}

/// Resumes the paused request.
pub fn resume_request() -> bool {
    // SAFETY: no pointers involved.
    unsafe { proxy_continue_stream(StreamType::HttpRequest as u32) == OK }
}

/// Resumes the paused response.
pub fn resume_response() -> bool {
    // SAFETY: no pointers involved.
    unsafe { proxy_continue_stream(StreamType::HttpResponse as u32) == OK }
}

/// Defines a counter (Envoy names it `wasmcustom.<name>`).
pub fn define_counter(name: &str) -> Option<u32> {
    let mut id = 0;
    // SAFETY: the pointers are valid for the call.
    let status = unsafe {
        proxy_define_metric(
            MetricType::Counter as u32,
            name.as_ptr(),
            name.len(),
            &mut id,
        )
    };
    (status == OK).then_some(id)
}

/// Adds `count` to a counter (nothing for 0: the host refuses offsets below 1).
pub fn increment_by(counter: Option<u32>, count: u64) {
    if let (Some(id), Ok(offset)) = (counter, i64::try_from(count))
        && offset > 0
    {
        // SAFETY: no pointers involved. A failure only loses the count.
        let _ = unsafe { proxy_increment_metric(id, offset) };
    }
}

/// Adds one to a counter.
pub fn increment(counter: Option<u32>) {
    if let Some(id) = counter {
        // SAFETY: no pointers involved. A failure only loses one count.
        let _ = unsafe { proxy_increment_metric(id, 1) };
    }
}
