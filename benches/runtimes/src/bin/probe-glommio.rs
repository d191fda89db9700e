//! The serving job on glommio: one pinned executor per core with its own
//! SO_REUSEPORT listener (glommio's default), files cached open as
//! BufferedFile, bodies read into a buffer and written (glommio offers no
//! sendfile or splice to sockets).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::io::BufferedFile;
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};
use nearcast_runtime_probes::*;

thread_local! {
    static FILES: RefCell<HashMap<String, Rc<(BufferedFile, u64)>>> = RefCell::new(HashMap::new());
}

fn main() {
    let (addr, root, threads) = args();
    println!("ready {addr}");
    let handles: Vec<_> = (0..threads)
        .map(|cpu| {
            let root = root.clone();
            LocalExecutorBuilder::new(Placement::Fixed(cpu % std::thread::available_parallelism().unwrap().get()))
                .spawn(move || async move {
                    let listener = TcpListener::bind(addr).expect("bind");
                    let root = Rc::new(root);
                    loop {
                        let Ok(stream) = listener.accept().await else { continue };
                        let _ = stream.set_nodelay(true);
                        glommio::spawn_local(serve(stream, root.clone())).detach();
                    }
                })
                .expect("executor")
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

async fn serve(mut stream: TcpStream, root: Rc<std::path::PathBuf>) {
    let mut inbuf: Vec<u8> = Vec::with_capacity(8192);
    let mut spare = [0u8; 4096];
    loop {
        let (path, used) = loop {
            if let Some(h) = parse_head(&inbuf) {
                break h;
            }
            match stream.read(&mut spare).await {
                Ok(0) | Err(_) => return,
                Ok(n) => inbuf.extend_from_slice(&spare[..n]),
            }
        };
        inbuf.drain(..used);
        let Some(file) = open(&root, &path).await else {
            if stream.write_all(NOT_FOUND).await.is_err() {
                return;
            }
            continue;
        };
        if stream.write_all(&head_200(file.1)).await.is_err() {
            return;
        }
        let mut pos = 0;
        while pos < file.1 {
            let want = CHUNK.min((file.1 - pos) as usize);
            let Ok(chunk) = file.0.read_at(pos, want).await else { return };
            if chunk.is_empty() || stream.write_all(&chunk).await.is_err() {
                return;
            }
            pos += chunk.len() as u64;
        }
    }
}

async fn open(root: &std::path::Path, url: &str) -> Option<Rc<(BufferedFile, u64)>> {
    if let Some(f) = FILES.with(|c| c.borrow().get(url).cloned()) {
        return Some(f);
    }
    let p = map_path(root, url)?;
    let file = BufferedFile::open(&p).await.ok()?;
    let len = file.file_size().await.ok()?;
    let f = Rc::new((file, len));
    FILES.with(|c| c.borrow_mut().insert(url.to_string(), f.clone()));
    Some(f)
}
