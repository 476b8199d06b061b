//! The HTTP/1.1 response reader: the daemon is on 127.0.0.1 and speaks plain HTTP, so a
//! request is a few lines written by hand, and this is the only part with any parsing. Kept
//! apart from the API so each can be read alone.

use std::io::{self, Read};

pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

pub(crate) enum ReadError {
    Io(io::Error),
    Malformed(String),
}

/// Reads until the response is complete (by Content-Length, by the chunked encoding's last
/// chunk, or else by the end of the stream), so that a server keeping the connection open
/// despite `Connection: close` does not hang us.
pub(crate) fn read_response(stream: &mut impl Read) -> Result<Response, ReadError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Io(e)),
        };
        let eof = n == 0;
        buf.extend_from_slice(&chunk[..n]);
        match parse_response(&buf, eof) {
            Ok(Some(response)) => return Ok(response),
            Ok(None) if eof => {
                return Err(ReadError::Malformed(format!(
                    "the connection closed after {} bytes, before the response was complete",
                    buf.len()
                )))
            }
            Ok(None) => {}
            Err(reason) => return Err(ReadError::Malformed(reason)),
        }
    }
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A complete response in `buf`, `None` if more is needed, or why it is not HTTP/1.x.
pub(crate) fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, String> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "a header that is not UTF-8")?;
    let rest = &buf[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| format!("not an HTTP/1.x status line: {status_line:?}"))?;
    if (100..200).contains(&status) {
        return parse_response(rest, eof); // 100 Continue and the like: the real one follows
    }
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("a malformed header line: {line:?}"));
        };
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("content-length") {
            content_length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("a bad Content-Length: {value:?}"))?,
            );
        } else if name.trim().eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    let body = if status == 204 || status == 304 {
        Some(Vec::new())
    } else if chunked {
        decode_chunked(rest)?
    } else if let Some(length) = content_length {
        (rest.len() >= length).then(|| rest[..length].to_vec())
    } else {
        eof.then(|| rest.to_vec())
    };
    Ok(body.map(|body| Response { status, body }))
}

/// The body of a chunked message, `None` while the last chunk (and the trailers) are not all
/// there yet.
pub(crate) fn decode_chunked(data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let Some(line_len) = find(&data[pos..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&data[pos..pos + line_len])
            .map_err(|_| "a chunk size line that is not UTF-8")?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| format!("a bad chunk size line: {line:?}"))?;
        pos += line_len + 2;
        if size == 0 {
            // Trailer fields, if any, up to an empty line.
            loop {
                let Some(len) = find(&data[pos..], b"\r\n") else {
                    return Ok(None);
                };
                if len == 0 {
                    return Ok(Some(body));
                }
                pos += len + 2;
            }
        }
        let end = pos
            .checked_add(size)
            .filter(|end| end.checked_add(2).is_some())
            .ok_or("a chunk size that overflows")?;
        if data.len() < end + 2 {
            return Ok(None);
        }
        if &data[end..end + 2] != b"\r\n" {
            return Err("a chunk not followed by CRLF".to_string());
        }
        body.extend_from_slice(&data[pos..end]);
        pos = end + 2;
    }
}
