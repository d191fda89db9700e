//! The serving job on tokio-uring: one runtime per thread sharing a
//! listening socket, files cached open, bodies read into a buffer and
//! written (tokio-uring offers no sendfile or splice).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use nearcast_runtime_probes::*;
use tokio_uring::fs::File;
use tokio_uring::net::{TcpListener, TcpStream};

thread_local! {
    static FILES: RefCell<HashMap<String, Rc<(File, u64)>>> = RefCell::new(HashMap::new());
}

fn main() {
    let (addr, root, threads) = args();
    let std_listener = std::net::TcpListener::bind(addr).expect("bind");
    println!("ready {}", std_listener.local_addr().unwrap());
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let l = std_listener.try_clone().unwrap();
            let root = root.clone();
            std::thread::spawn(move || {
                tokio_uring::start(async move {
                    let listener = TcpListener::from_std(l);
                    let root = Rc::new(root);
                    loop {
                        let Ok((stream, _)) = listener.accept().await else { continue };
                        let _ = stream.set_nodelay(true);
                        tokio_uring::spawn(serve(stream, root.clone()));
                    }
                })
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

async fn serve(stream: TcpStream, root: Rc<std::path::PathBuf>) {
    let mut inbuf: Vec<u8> = Vec::with_capacity(8192);
    let mut body = vec![0u8; CHUNK];
    loop {
        let (path, used) = loop {
            if let Some(h) = parse_head(&inbuf) {
                break h;
            }
            let spare = vec![0u8; 4096];
            let (res, spare) = stream.read(spare).await;
            match res {
                Ok(0) | Err(_) => return,
                Ok(n) => inbuf.extend_from_slice(&spare[..n]),
            }
        };
        inbuf.drain(..used);
        let file = match open(&root, &path).await {
            Some(f) => f,
            None => {
                if stream.write_all(NOT_FOUND.to_vec()).await.0.is_err() {
                    return;
                }
                continue;
            }
        };
        if stream.write_all(head_200(file.1)).await.0.is_err() {
            return;
        }
        let mut pos = 0;
        while pos < file.1 {
            let (res, b) = file.0.read_at(body, pos).await;
            let n = match res {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let (res, slice) = stream.write_all(tokio_uring::buf::BoundedBuf::slice(b, ..n)).await;
            body = slice.into_inner();
            if res.is_err() {
                return;
            }
            pos += n as u64;
        }
    }
}

async fn open(root: &std::path::Path, url: &str) -> Option<Rc<(File, u64)>> {
    if let Some(f) = FILES.with(|c| c.borrow().get(url).cloned()) {
        return Some(f);
    }
    let p = map_path(root, url)?;
    let std_file = std::fs::File::open(&p).ok()?;
    let len = std_file.metadata().ok()?.len();
    let f = Rc::new((File::from_std(std_file), len));
    FILES.with(|c| c.borrow_mut().insert(url.to_string(), f.clone()));
    Some(f)
}
