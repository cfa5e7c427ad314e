//! The OTLP exporter's HTTP client: one plain HTTP/1.1 POST per export over
//! a fresh loopback or cluster-network connection. The exporter calls it on
//! its own batch thread, never on the data path, so blocking I/O is what
//! fits; a full HTTP stack (and a second async runtime) would only add
//! build weight. Plain `http://` only: a collector beside arus (a sidecar or
//! a cluster service) terminates TLS towards a remote backend.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};

#[derive(Debug, Clone)]
pub struct PlainHttpClient {
    pub timeout: Duration,
}

/// Most bytes of an answer read: an OTLP answer is small.
const MAX_ANSWER: u64 = 1 << 20;

impl PlainHttpClient {
    fn post(&self, request: &Request<Bytes>) -> Result<(u16, Vec<u8>), HttpError> {
        let uri = request.uri();
        if uri.scheme_str() != Some("http") {
            return Err(format!("only http:// endpoints are supported, not {uri}").into());
        }
        let host = uri.host().ok_or("the endpoint has no host")?;
        let port = uri.port_u16().unwrap_or(80);
        let address = (host, port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| format!("{host} resolves to no address"))?;
        let mut stream = TcpStream::connect_timeout(&address, self.timeout)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut head = format!(
            "{} {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-length: {}\r\nconnection: close\r\n",
            request.method(),
            request.body().len()
        );
        for (name, value) in request.headers() {
            if let Ok(value) = value.to_str() {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(request.body())?;
        let mut answer = Vec::new();
        stream.take(MAX_ANSWER).read_to_end(&mut answer)?;
        parse_answer(&answer)
    }
}

/// The status and body of an HTTP/1.x answer read to its end.
fn parse_answer(answer: &[u8]) -> Result<(u16, Vec<u8>), HttpError> {
    let text_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer has no complete head")?;
    let head = std::str::from_utf8(&answer[..text_end])?;
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("not an HTTP status line: {head:?}"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    // The exporter reads only the status (and a protobuf body it can do
    // without); a chunked body is not worth decoding here.
    let body = if chunked {
        Vec::new()
    } else {
        answer[text_end + 4..].to_vec()
    };
    Ok((status, body))
}

#[async_trait::async_trait]
impl HttpClient for PlainHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (status, body) = self.post(&request)?;
        Ok(Response::builder().status(status).body(Bytes::from(body))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_to_status_and_body() {
        let (status, body) =
            parse_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").expect("parses");
        assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
        let (status, body) = parse_answer(
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n",
        )
        .expect("parses");
        assert_eq!((status, body.len()), (503, 0));
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_answer(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn a_post_reaches_a_loopback_server_whole() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // Read until the whole body (5 bytes after the head) is in.
            loop {
                let n = conn.read(&mut buf).expect("read");
                got.extend_from_slice(&buf[..n]);
                if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                    if got.len() >= end + 4 + 5 {
                        break;
                    }
                }
            }
            conn.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                .expect("write");
            String::from_utf8(got).expect("utf-8")
        });
        let client = PlainHttpClient {
            timeout: Duration::from_secs(5),
        };
        let request = Request::builder()
            .method("POST")
            .uri(format!("http://127.0.0.1:{port}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(Bytes::from_static(b"hello"))
            .expect("request");
        let (status, _) = client.post(&request).expect("posted");
        assert_eq!(status, 202);
        let seen = server.join().expect("server");
        assert!(seen.starts_with("POST /v1/traces HTTP/1.1\r\n"), "{seen}");
        assert!(
            seen.contains("content-type: application/x-protobuf\r\n"),
            "{seen}"
        );
        assert!(seen.contains("content-length: 5\r\n"), "{seen}");
        assert!(seen.ends_with("\r\n\r\nhello"), "{seen}");
    }
}
