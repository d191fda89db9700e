//! `nearcast-verity open DEVICE NAME BLOCKS:SALT:ROOT`: maps a root slot
//! through dm-verity and prints the mapped device (the initramfs mounts
//! it). `nearcast-verity verify IMAGE BLOCKS:SALT:ROOT`: checks a slot
//! image file (data and tree) on a host. No argument parser: this binary
//! goes into every initramfs, so it stays small.

use std::process::ExitCode;

use nearcast_verity::{dm, tree, Params};

fn run(args: &[String]) -> Result<String, String> {
    match args {
        [cmd, dev, name, params] if cmd == "open" => {
            let p = Params::parse(params).map_err(|e| e.to_string())?;
            dm::create(name, "verity", p.sectors(), &p.table(dev)).map_err(|e| e.to_string())
        }
        [cmd, image, params] if cmd == "verify" => {
            let p = Params::parse(params).map_err(|e| e.to_string())?;
            let bytes = std::fs::read(image).map_err(|e| format!("{image}: {e}"))?;
            tree::verify(&bytes, &p).map_err(|e| format!("{image}: {e}"))?;
            Ok(format!("{image}: {} data blocks verified", p.data_blocks))
        }
        _ => Err("usage: nearcast-verity open DEVICE NAME BLOCKS:SALT:ROOT | verify IMAGE BLOCKS:SALT:ROOT".into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nearcast-verity: {e}");
            ExitCode::FAILURE
        }
    }
}
