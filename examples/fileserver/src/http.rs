//! HTTP/1.1, sans-I/O: bytes in, a decision out. Parsing is httparse's; this module adds
//! the server's rules: methods, versions, limits, ranges, validators and keep-alive. The
//! backends (AF_XDP stack, kernel sockets) only move the bytes it decides on.

use std::time::SystemTime;

/// Largest request head (request line + headers) accepted: beyond it, 431.
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest request body accepted (and discarded): beyond it, 413.
pub const MAX_BODY: u64 = 64 * 1024;
/// Headers parsed per request.
const MAX_HEADERS: usize = 48;

/// A parsed request: what the server needs of it, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET` or `HEAD` (others are answered 405 before a Request exists).
    pub head_only: bool,
    /// The path, percent-decoded, without query string; starts with `/`.
    pub path: String,
    /// HTTP/1.0 (false) or 1.1 (true).
    pub http11: bool,
    /// The client wants the connection kept (1.1 default, 1.0 with `keep-alive`).
    pub keep_alive: bool,
    /// Raw `Range` header.
    pub range: Option<String>,
    /// Raw `If-None-Match` header.
    pub if_none_match: Option<String>,
    /// Raw `If-Modified-Since` header.
    pub if_modified_since: Option<String>,
}

/// The outcome of looking at the front of a connection's input.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole request yet.
    Partial,
    /// A request, and how many bytes (head and body) it takes. That may be more than the
    /// buffer holds: the rest of the body is discarded as it arrives (see
    /// [`crate::session::Session`]), so a body never has to fit the buffer.
    Request(Request, usize),
    /// A request answered with an error status; `consumed` bytes belong to it (more than
    /// the buffer holds if its body is still arriving), and the connection closes after
    /// the answer if `close`.
    Error { status: Status, consumed: usize, close: bool, http11: bool },
}

/// Status codes the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Ok,
    PartialContent,
    NotModified,
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    RangeNotSatisfiable,
    HeaderFieldsTooLarge,
    InternalError,
    ServiceUnavailable,
    VersionNotSupported,
}

impl Status {
    /// The code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::PartialContent => 206,
            Status::NotModified => 304,
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::PayloadTooLarge => 413,
            Status::RangeNotSatisfiable => 416,
            Status::HeaderFieldsTooLarge => 431,
            Status::InternalError => 500,
            Status::ServiceUnavailable => 503,
            Status::VersionNotSupported => 505,
        }
    }

    /// The reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::PartialContent => "Partial Content",
            Status::NotModified => "Not Modified",
            Status::BadRequest => "Bad Request",
            Status::Forbidden => "Forbidden",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::PayloadTooLarge => "Payload Too Large",
            Status::RangeNotSatisfiable => "Range Not Satisfiable",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::InternalError => "Internal Server Error",
            Status::ServiceUnavailable => "Service Unavailable",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }

    /// Every status, for counters.
    pub const ALL: [Status; 13] = [
        Status::Ok,
        Status::PartialContent,
        Status::NotModified,
        Status::BadRequest,
        Status::Forbidden,
        Status::NotFound,
        Status::MethodNotAllowed,
        Status::PayloadTooLarge,
        Status::RangeNotSatisfiable,
        Status::HeaderFieldsTooLarge,
        Status::InternalError,
        Status::ServiceUnavailable,
        Status::VersionNotSupported,
    ];
}

/// Looks at the front of `buf` for one request.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD {
                return err(Status::HeaderFieldsTooLarge, buf.len(), true);
            }
            // A request line that is not HTTP/1.x shows before the head completes.
            if let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") {
                if let Some(v) = version_of(&buf[..line_end]) {
                    if !v.starts_with(b"HTTP/1.") {
                        return err(Status::VersionNotSupported, buf.len(), true);
                    }
                }
            }
            return Parsed::Partial;
        }
        Err(httparse::Error::Version) => return err(Status::VersionNotSupported, buf.len(), true),
        Err(httparse::Error::TooManyHeaders) => return err(Status::HeaderFieldsTooLarge, buf.len(), true),
        Err(_) => return err(Status::BadRequest, buf.len(), true),
    };
    if head_len > MAX_HEAD {
        return err(Status::HeaderFieldsTooLarge, head_len, true);
    }
    let http11 = req.version == Some(1);
    let method = req.method.unwrap_or("");
    let raw_path = req.path.unwrap_or("");

    let mut keep_alive = http11;
    let mut range = None;
    let mut inm = None;
    let mut ims = None;
    let mut body: Option<u64> = None;
    let mut chunked = false;
    let mut hosts = 0;
    for h in req.headers.iter() {
        let value = match std::str::from_utf8(h.value) {
            Ok(v) => v.trim(),
            Err(_) => return err(Status::BadRequest, head_len, true),
        };
        let name = h.name;
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("range") {
            range = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("if-none-match") {
            inm = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            ims = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("content-length") {
            // RFC 9112 6.3: one length of digits only. A sign, a list or a second header
            // is how request smuggling starts: refuse it and close.
            match (body, content_length(value)) {
                (None, Some(n)) => body = Some(n),
                _ => return err(Status::BadRequest, head_len, true),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    if http11 && hosts != 1 {
        // RFC 9112 3.2: a 1.1 request without exactly one Host is a 400.
        return Parsed::Error { status: Status::BadRequest, consumed: head_len, close: true, http11 };
    }
    if chunked && body.is_some() {
        // RFC 9112 6.1: both framings at once is a smuggling attempt.
        return Parsed::Error { status: Status::BadRequest, consumed: buf.len(), close: true, http11 };
    }
    if chunked {
        // Request bodies are not wanted; a chunked one cannot be skipped cheaply.
        return Parsed::Error { status: Status::PayloadTooLarge, consumed: buf.len(), close: true, http11 };
    }
    let body = body.unwrap_or(0);
    if body > MAX_BODY {
        return Parsed::Error { status: Status::PayloadTooLarge, consumed: buf.len(), close: true, http11 };
    }
    // The body need not have arrived: whatever of it is missing is discarded on arrival.
    let total = head_len + body as usize;
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Parsed::Error { status: Status::MethodNotAllowed, consumed: total, close: !keep_alive, http11 },
    };
    let Some(path) = decode_path(raw_path) else {
        return Parsed::Error { status: Status::BadRequest, consumed: total, close: !keep_alive, http11 };
    };
    Parsed::Request(
        Request { head_only, path, http11, keep_alive, range, if_none_match: inm, if_modified_since: ims },
        total,
    )
}

/// A `Content-Length` value: ASCII digits only (no sign, no list, no spaces inside).
fn content_length(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

fn err(status: Status, consumed: usize, close: bool) -> Parsed {
    Parsed::Error { status, consumed, close, http11: true }
}

fn version_of(line: &[u8]) -> Option<&[u8]> {
    line.rsplit(|&b| b == b' ').next()
}

/// Percent-decodes the path part of a request target. `None` for anything that is not
/// an absolute path, or that decodes to a NUL or invalid UTF-8.
pub fn decode_path(target: &str) -> Option<String> {
    let path = target.split(['?', '#']).next()?;
    if !path.starts_with('/') {
        return None;
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                out.push(v);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    if out.contains(&0) {
        return None;
    }
    String::from_utf8(out).ok()
}

/// A byte range of a file, inclusive start, exclusive end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable range: send the whole file (also for multi-range and other units).
    Full,
    /// One satisfiable range: 206.
    Partial(ByteRange),
    /// Nothing satisfiable: 416.
    Unsatisfiable,
}

/// Evaluates a `Range` header (RFC 9110 14.1.2) against a size.
pub fn range(header: Option<&str>, size: u64) -> RangeAnswer {
    let Some(h) = header else { return RangeAnswer::Full };
    let Some(spec) = h.trim().strip_prefix("bytes=") else { return RangeAnswer::Full };
    if spec.contains(',') {
        // Multipart ranges are optional; answering with the whole file is allowed.
        return RangeAnswer::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeAnswer::Full };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().or(Some(u64::MAX))
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeAnswer::Full,
        (true, false) => {
            // Suffix: the last n bytes.
            let Some(n) = parse(b) else { return RangeAnswer::Full };
            if n == 0 || size == 0 {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Partial(ByteRange { start: size - n.min(size), end: size })
        }
        (false, _) => {
            let Some(first) = parse(a) else { return RangeAnswer::Full };
            let last = if b.is_empty() {
                u64::MAX
            } else {
                match parse(b) {
                    Some(l) if l >= first => l,
                    _ => return RangeAnswer::Full,
                }
            };
            if first >= size {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Partial(ByteRange { start: first, end: last.saturating_add(1).min(size) })
        }
    }
}

/// What the server knows of a file to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validators {
    pub size: u64,
    pub mtime: SystemTime,
    pub ino: u64,
    pub mtime_nsec: u64,
}

impl Validators {
    /// A strong entity tag from inode, size and modification time.
    pub fn etag(&self) -> String {
        format!("\"{:x}-{:x}-{:x}\"", self.ino, self.size, self.mtime_nsec)
    }
}

/// Whether the request's validators say the client's copy is current (304).
pub fn not_modified(req: &Request, v: &Validators) -> bool {
    if let Some(inm) = &req.if_none_match {
        let tag = v.etag();
        return inm.split(',').map(str::trim).any(|t| t == "*" || t == tag || t.strip_prefix("W/") == Some(&tag));
    }
    if let Some(ims) = &req.if_modified_since {
        if let Ok(since) = httpdate::parse_http_date(ims) {
            // HTTP dates have whole seconds; compare at that precision.
            let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            return secs(v.mtime) <= secs(since);
        }
    }
    false
}

/// `Content-Type` by file extension.
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "log" | "md" => "text/plain; charset=utf-8",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// A response head, ready to send, and the file range behind it (if any body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: Status,
    pub bytes: Vec<u8>,
    /// The file range to send after the head (None: no body).
    pub body: Option<ByteRange>,
    /// Close the connection after this response.
    pub close: bool,
}

/// Builds the answer to `req` for a file with validators `v` (already opened by the caller).
pub fn answer_file(req: &Request, path: &str, v: &Validators, now: SystemTime) -> Head {
    let close = !req.keep_alive;
    if not_modified(req, v) {
        let mut h = start(Status::NotModified, req.http11, close, now);
        h.push_str(&format!("ETag: {}\r\nLast-Modified: {}\r\n\r\n", v.etag(), httpdate::fmt_http_date(v.mtime)));
        return Head { status: Status::NotModified, bytes: h.into_bytes(), body: None, close };
    }
    let (status, r) = match range(req.range.as_deref(), v.size) {
        RangeAnswer::Full => (Status::Ok, ByteRange { start: 0, end: v.size }),
        RangeAnswer::Partial(r) => (Status::PartialContent, r),
        RangeAnswer::Unsatisfiable => {
            let mut h = start(Status::RangeNotSatisfiable, req.http11, close, now);
            h.push_str(&format!("Content-Range: bytes */{}\r\nContent-Length: 0\r\n\r\n", v.size));
            return Head { status: Status::RangeNotSatisfiable, bytes: h.into_bytes(), body: None, close };
        }
    };
    let mut h = start(status, req.http11, close, now);
    h.push_str(&format!(
        "Content-Type: {}\r\nContent-Length: {}\r\nLast-Modified: {}\r\nETag: {}\r\nAccept-Ranges: bytes\r\n",
        content_type(path),
        r.end - r.start,
        httpdate::fmt_http_date(v.mtime),
        v.etag()
    ));
    if status == Status::PartialContent {
        h.push_str(&format!("Content-Range: bytes {}-{}/{}\r\n", r.start, r.end.saturating_sub(1), v.size));
    }
    h.push_str("\r\n");
    let body = (!req.head_only && r.end > r.start).then_some(r);
    Head { status, bytes: h.into_bytes(), body, close }
}

/// The answer for an error status (small text body, except for HEAD-less cases).
pub fn answer_error(status: Status, http11: bool, close: bool, head_only: bool, now: SystemTime) -> Head {
    let body = format!("{} {}\n", status.code(), status.reason());
    let mut h = start(status, http11, close, now);
    if status == Status::MethodNotAllowed {
        h.push_str("Allow: GET, HEAD\r\n");
    }
    if status == Status::ServiceUnavailable {
        h.push_str("Retry-After: 1\r\n");
    }
    h.push_str(&format!("Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n", body.len()));
    if !head_only {
        h.push_str(&body);
    }
    Head { status, bytes: h.into_bytes(), body: None, close }
}

/// A 200 with a text body (the control port's metrics).
pub fn answer_text(req: &Request, text: &str, now: SystemTime) -> Head {
    let close = !req.keep_alive;
    let mut h = start(Status::Ok, req.http11, close, now);
    h.push_str(&format!("Content-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n", text.len()));
    if !req.head_only {
        h.push_str(text);
    }
    Head { status: Status::Ok, bytes: h.into_bytes(), body: None, close }
}

fn start(status: Status, http11: bool, close: bool, now: SystemTime) -> String {
    format!(
        "HTTP/1.{} {} {}\r\nServer: zcstack\r\nDate: {}\r\nConnection: {}\r\n",
        u8::from(http11),
        status.code(),
        status.reason(),
        httpdate::fmt_http_date(now),
        if close { "close" } else { "keep-alive" }
    )
}

#[cfg(test)]
mod tests;
