use std::time::{Duration, SystemTime};

use super::*;

fn req(text: &str) -> Request {
    match parse(text.as_bytes()) {
        Parsed::Request(r, n) => {
            assert_eq!(n, text.len());
            r
        }
        other => panic!("{text:?} -> {other:?}"),
    }
}

fn status_of(text: &[u8]) -> Status {
    match parse(text) {
        Parsed::Error { status, .. } => status,
        other => panic!("{other:?}"),
    }
}

#[test]
fn get_and_head_parse_with_keep_alive_defaults() {
    let r = req("GET /a/b.txt?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(r.path, "/a/b.txt");
    assert!(r.keep_alive && r.http11 && !r.head_only);
    let r = req("HEAD / HTTP/1.0\r\n\r\n");
    assert!(r.head_only && !r.keep_alive && !r.http11);
    let r = req("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(r.keep_alive);
    let r = req("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert!(!r.keep_alive);
}

#[test]
fn pipelined_requests_are_taken_one_at_a_time() {
    let two = b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HT";
    let Parsed::Request(r1, n1) = parse(two) else { panic!() };
    assert_eq!(r1.path, "/1");
    let Parsed::Request(r2, n2) = parse(&two[n1..]) else { panic!() };
    assert_eq!(r2.path, "/2");
    assert_eq!(parse(&two[n1 + n2..]), Parsed::Partial);
}

#[test]
fn bad_requests_get_their_status() {
    assert_eq!(status_of(b"GARBAGE\r\n\r\n"), Status::BadRequest);
    assert_eq!(status_of(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"), Status::VersionNotSupported);
    assert_eq!(status_of(b"GET / HTTP/3.0\r\n"), Status::VersionNotSupported);
    assert_eq!(status_of(b"POST / HTTP/1.1\r\nHost: h\r\n\r\n"), Status::MethodNotAllowed);
    assert_eq!(status_of(b"GET / HTTP/1.1\r\n\r\n"), Status::BadRequest, "no Host");
    assert_eq!(status_of(b"GET nopath HTTP/1.1\r\nHost: h\r\n\r\n"), Status::BadRequest);
    assert_eq!(status_of(b"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n"), Status::BadRequest);
    assert_eq!(status_of(b"GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n"), Status::BadRequest);
    let huge = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
    assert_eq!(status_of(huge.as_bytes()), Status::HeaderFieldsTooLarge);
    let partial_huge = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD + 10));
    assert_eq!(status_of(partial_huge.as_bytes()), Status::HeaderFieldsTooLarge);
    assert_eq!(status_of(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 999999999\r\n\r\n"), Status::PayloadTooLarge);
}

#[test]
fn a_small_body_is_consumed_with_its_request() {
    let t = b"GET /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /y HTTP/1.1\r\nHost: h\r\n\r\n";
    let Parsed::Request(_, n) = parse(t) else { panic!() };
    let Parsed::Request(r, _) = parse(&t[n..]) else { panic!() };
    assert_eq!(r.path, "/y");
    assert_eq!(parse(&t[..t.len() - 40]), Parsed::Partial);
}

#[test]
fn percent_decoding_keeps_dots_for_the_resolver() {
    assert_eq!(decode_path("/%2e%2e/etc/passwd").as_deref(), Some("/../etc/passwd"));
    assert_eq!(decode_path("/a%20b").as_deref(), Some("/a b"));
    assert_eq!(decode_path("relative"), None);
    assert_eq!(decode_path("/%ff"), None, "not UTF-8");
}

#[test]
fn ranges() {
    let p = |s| range(Some(s), 1000);
    assert_eq!(range(None, 1000), RangeAnswer::Full);
    assert_eq!(p("bytes=0-0"), RangeAnswer::Partial(ByteRange { start: 0, end: 1 }));
    assert_eq!(p("bytes=10-19"), RangeAnswer::Partial(ByteRange { start: 10, end: 20 }));
    assert_eq!(p("bytes=990-"), RangeAnswer::Partial(ByteRange { start: 990, end: 1000 }));
    assert_eq!(p("bytes=-10"), RangeAnswer::Partial(ByteRange { start: 990, end: 1000 }));
    assert_eq!(p("bytes=-5000"), RangeAnswer::Partial(ByteRange { start: 0, end: 1000 }));
    assert_eq!(p("bytes=500-99999"), RangeAnswer::Partial(ByteRange { start: 500, end: 1000 }));
    assert_eq!(p("bytes=1000-"), RangeAnswer::Unsatisfiable);
    assert_eq!(p("bytes=-0"), RangeAnswer::Unsatisfiable);
    assert_eq!(p("bytes=5-1"), RangeAnswer::Full, "invalid: ignored");
    assert_eq!(p("bytes=0-1,5-6"), RangeAnswer::Full, "multipart: whole file");
    assert_eq!(p("items=0-1"), RangeAnswer::Full);
    assert_eq!(p("bytes=a-b"), RangeAnswer::Full);
    assert_eq!(range(Some("bytes=0-"), 0), RangeAnswer::Unsatisfiable);
    assert_eq!(p("bytes=99999999999999999999999-"), RangeAnswer::Unsatisfiable);
}

fn validators() -> Validators {
    Validators {
        size: 1000,
        mtime: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        ino: 42,
        mtime_nsec: 7,
    }
}

#[test]
fn conditional_requests_get_304() {
    let v = validators();
    let mut r = req("GET /f HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(!not_modified(&r, &v));
    r.if_none_match = Some(v.etag());
    assert!(not_modified(&r, &v));
    r.if_none_match = Some("\"other\"".into());
    assert!(!not_modified(&r, &v), "If-None-Match wins over If-Modified-Since");
    r.if_none_match = None;
    r.if_modified_since = Some(httpdate::fmt_http_date(v.mtime));
    assert!(not_modified(&r, &v));
    r.if_modified_since = Some(httpdate::fmt_http_date(v.mtime - Duration::from_secs(1)));
    assert!(!not_modified(&r, &v));
}

#[test]
fn answer_heads_have_exact_lengths() {
    let v = validators();
    let now = SystemTime::UNIX_EPOCH;
    let r = req("GET /f.html HTTP/1.1\r\nHost: h\r\nRange: bytes=100-199\r\n\r\n");
    let h = answer_file(&r, "/f.html", &v, now);
    let text = String::from_utf8(h.bytes.clone()).unwrap();
    assert!(text.starts_with("HTTP/1.1 206 Partial Content\r\n"));
    assert!(text.contains("Content-Length: 100\r\n"));
    assert!(text.contains("Content-Range: bytes 100-199/1000\r\n"));
    assert!(text.contains("Content-Type: text/html"));
    assert_eq!(h.body, Some(ByteRange { start: 100, end: 200 }));

    let r = req("HEAD /f HTTP/1.1\r\nHost: h\r\n\r\n");
    let h = answer_file(&r, "/f", &v, now);
    assert!(String::from_utf8(h.bytes).unwrap().contains("Content-Length: 1000\r\n"));
    assert_eq!(h.body, None, "HEAD has no body");

    let r = req("GET /f HTTP/1.1\r\nHost: h\r\nRange: bytes=2000-\r\n\r\n");
    let h = answer_file(&r, "/f", &v, now);
    assert_eq!(h.status, Status::RangeNotSatisfiable);
    assert!(String::from_utf8(h.bytes).unwrap().contains("Content-Range: bytes */1000\r\n"));

    let e = answer_error(Status::NotFound, true, false, false, now);
    let text = String::from_utf8(e.bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(&format!("Content-Length: {}", body.len())));
}

#[test]
fn a_body_that_has_not_arrived_is_counted_in_what_the_request_takes() {
    let t = b"GET /x HTTP/1.1\r\nHost: h\r\nContent-Length: 30000\r\n\r\nabc";
    let Parsed::Request(r, n) = parse(t) else { panic!() };
    assert_eq!(r.path, "/x");
    assert_eq!(n, t.len() - 3 + 30000, "head plus the whole body, beyond the buffer");
}

#[test]
fn content_length_must_be_one_plain_number() {
    let with = |cl: &str| format!("GET / HTTP/1.1\r\nHost: h\r\n{cl}\r\n\r\n");
    for bad in [
        "Content-Length: +5",
        "Content-Length: -1",
        "Content-Length: 0x10",
        "Content-Length: 5, 5",
        "Content-Length: 5 5",
        "Content-Length:",
        "Content-Length: 5\r\nContent-Length: 5",
        "Content-Length: 5\r\ncontent-length: 6",
        "Content-Length: 5\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 5",
    ] {
        match parse(with(bad).as_bytes()) {
            Parsed::Error { status, close, .. } => {
                assert_eq!(status, Status::BadRequest, "{bad:?}");
                assert!(close, "{bad:?}: a smuggling attempt must close the connection");
            }
            other => panic!("{bad:?} -> {other:?}"),
        }
    }
    let Parsed::Request(_, n) = parse(with("Content-Length:  5 ").as_bytes()) else { panic!() };
    assert_eq!(n, with("Content-Length:  5 ").len() + 5, "surrounding spaces are not part of the value");
}
