//! Fuzzes the request-head parser (`todo_api::head`), the process's only HTTP parser.
//!
//! The bytes are what a client sent. Properties checked, besides "never panics":
//! - `end` finds a head no longer than the input and than `HEAD_LIMIT`, and finds the same end
//!   when it resumes a scan that an earlier, shorter read left without one;
//! - every accepted head, written out again (its request line, its fields, its own framing and
//!   connection headers), is accepted and parses to the same method, target, version, fields,
//!   body framing, connection fate and expectation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use todo_api::head::{self, Body, HEAD_LIMIT, Head};

/// The head as a client would send it to mean the same request.
fn written(head: &Head) -> Vec<u8> {
    let version = if head.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let mut text = format!("{} {} {version}\r\n", head.method, head.target);
    for (name, value) in &head.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    match head.body {
        Body::Length(0) => {}
        Body::Length(length) => text.push_str(&format!("Content-Length: {length}\r\n")),
        Body::Chunked => text.push_str("Transfer-Encoding: chunked\r\n"),
    }
    match (head.close, head.http10) {
        (true, false) => text.push_str("Connection: close\r\n"),
        (false, true) => text.push_str("Connection: keep-alive\r\n"),
        _ => {}
    }
    if head.expects_continue {
        text.push_str("Expect: 100-continue\r\n");
    }
    text.push_str("\r\n");
    text.into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let Ok(found) = head::end(data, 0) else { return };
    if let Some(split) = data.len().checked_sub(1).map(|last| usize::from(data[0]) % (last + 1)) {
        if let Ok(None) = head::end(&data[..split], 0) {
            assert_eq!(head::end(data, split).ok(), Some(found), "a resumed scan ends elsewhere");
        }
    }
    let Some(end) = found else { return };
    assert!(end <= data.len() && end <= HEAD_LIMIT, "end {end} of {} bytes", data.len());
    let Ok(parsed) = head::parse(&data[..end]) else { return };
    let again = written(&parsed);
    let end_again = head::end(&again, 0).ok().flatten();
    assert_eq!(end_again, Some(again.len()), "written out: {:?}", String::from_utf8_lossy(&again));
    match head::parse(&again) {
        Ok(reparsed) => assert_eq!(reparsed, parsed, "written out: {:?}", String::from_utf8_lossy(&again)),
        Err(e) => panic!("refused when written out ({e:?}): {:?}", String::from_utf8_lossy(&again)),
    }
});
