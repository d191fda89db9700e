//! Our hash tree is cryptsetup's: `veritysetup format --no-superblock`
//! over the same data and salt writes the same tree bytes and prints the
//! same root hash, for one block, one hash block and two levels.
//! (`scripts/image` installs cryptsetup-bin.)

use std::process::Command;

use nearcast_verity::{tree, BLOCK};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn tree_and_root_are_veritysetups() {
    let dir = std::env::temp_dir().join(format!("verity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for len in [100, 128 * BLOCK, 129 * BLOCK + 1] {
        let mut image: Vec<u8> = (0..len as u64).map(|i| ((i * 2_654_435_761) >> 13) as u8).collect();
        let p = tree::append_tree(&mut image).unwrap();
        let split = p.data_blocks as usize * BLOCK;
        let (data, hash) = (dir.join("data"), dir.join("hash"));
        std::fs::write(&data, &image[..split]).unwrap();
        let _ = std::fs::remove_file(&hash);
        let out = Command::new("veritysetup")
            .args(["format", "--no-superblock", "--hash=sha256"])
            .arg(format!("--salt={}", hex(&p.salt)))
            .arg(&data)
            .arg(&hash)
            .output()
            .expect("veritysetup (cryptsetup-bin) is installed");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let root = stdout
            .lines()
            .find_map(|l| l.strip_prefix("Root hash:"))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no root hash in {stdout}"));
        assert_eq!(root, hex(&p.root), "{len} bytes");
        assert!(
            std::fs::read(&hash).unwrap() == image[split..],
            "{len} bytes: tree bytes differ"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
