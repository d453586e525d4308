//! `plugin wget [FLAGS] http://HOST:PORT/PATH`: one GET, exit 0 on a 2xx answer, 1 otherwise.
//! The image is `FROM scratch`, so a compose healthcheck written the usual way
//! (`wget -qO- http://localhost:8080/health/ready`) has this to call.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

pub fn run(args: &[String]) -> i32 {
    let Some(url) = args.iter().find(|a| a.starts_with("http://")) else {
        eprintln!("wget: no http:// URL among {args:?}");
        return 1;
    };
    let rest = &url["http://".len()..];
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let address = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
    match get(&address, authority, path) {
        Ok(status) if (200..300).contains(&status) => 0,
        Ok(status) => {
            eprintln!("wget: {url}: HTTP {status}");
            1
        }
        Err(e) => {
            eprintln!("wget: {url}: {e}");
            1
        }
    }
}

fn get(address: &str, host: &str, path: &str) -> std::io::Result<u16> {
    let target = address.to_socket_addrs()?.next().ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| std::io::Error::other("no status line"))
}
