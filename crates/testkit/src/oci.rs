//! A tiny single-layer image, built from bytes, for pushing into a
//! [`crate::RealRegistry`]: as an OCI image layout (`skopeo copy oci:DIR:TAG
//! docker://...`) or in skopeo's `dir:` format, which also carries Docker
//! schema 2 manifests (`skopeo copy dir:DIR docker://...`).

use serde_json::json;
use std::path::Path;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker image manifest v2, schema 2 media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Which manifest (and matching config/layer media types) to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestFormat {
    /// OCI image manifest.
    Oci,
    /// Docker schema 2: what every Docker CLI understands (20.10's `manifest
    /// inspect` does not accept OCI manifests).
    DockerV2S2,
}

/// Digests and bytes of an image written by [`write_oci_layout`] or [`write_dir_image`].
#[derive(Clone, Debug)]
pub struct TinyImage {
    /// Media type of the manifest.
    pub media_type: &'static str,
    /// `sha256:...` of the manifest (what a registry reports as the digest).
    pub manifest_digest: String,
    /// `sha256:...` of the config blob.
    pub config_digest: String,
    /// `sha256:...` of the (gzip) layer blob.
    pub layer_digest: String,
    /// `sha256:...` of the uncompressed tar (the config's `diff_ids` entry).
    pub diff_id: String,
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// The config blob.
    pub config: Vec<u8>,
    /// The layer blob (gzip of a tar).
    pub layer: Vec<u8>,
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Builds the image: one gzip tar layer holding `file_name` = `content`.
/// The layer is already compressed so copying tools push it (and the
/// manifest) byte for byte: the digests here are the registry's digests.
fn build(format: ManifestFormat, file_name: &str, content: &[u8]) -> TinyImage {
    let (media_type, config_type, layer_type) = match format {
        ManifestFormat::Oci => (
            OCI_MANIFEST,
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        ManifestFormat::DockerV2S2 => (
            DOCKER_MANIFEST,
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        ),
    };
    let tar = tar_one_file(file_name, content);
    let diff_id = sha256_digest(&tar);
    let layer = gzip_stored(&tar);
    let layer_digest = sha256_digest(&layer);
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    })
    .to_string()
    .into_bytes();
    let config_digest = sha256_digest(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": layer_type, "digest": layer_digest, "size": layer.len()}],
    })
    .to_string()
    .into_bytes();
    TinyImage {
        media_type,
        manifest_digest: sha256_digest(&manifest),
        config_digest,
        layer_digest,
        diff_id,
        manifest,
        config,
        layer,
    }
}

fn hex(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

/// Writes an OCI image layout in `dir` holding one OCI image tagged `tag`
/// (see [`write_dir_image`] for the contents). Pass unique content per test
/// so digests never collide with another test's (clients cache blob
/// locations by digest).
pub fn write_oci_layout(dir: &Path, tag: &str, file_name: &str, content: &[u8]) -> TinyImage {
    let image = build(ManifestFormat::Oci, file_name, content);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": image.media_type,
            "digest": image.manifest_digest,
            "size": image.manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).expect("create OCI blobs dir");
    for (digest, bytes) in [
        (&image.layer_digest, &image.layer),
        (&image.config_digest, &image.config),
        (&image.manifest_digest, &image.manifest),
    ] {
        std::fs::write(blobs.join(hex(digest)), bytes).expect("write OCI blob");
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("write oci-layout");
    std::fs::write(dir.join("index.json"), index.to_string()).expect("write index.json");
    image
}

/// Writes one image in skopeo's `dir:` transport format (`manifest.json`,
/// blobs named by hex digest, `version`): a gzip tar layer holding
/// `file_name` = `content`, with a manifest of `format`. Pass unique content
/// per test (see [`write_oci_layout`]).
pub fn write_dir_image(
    dir: &Path,
    format: ManifestFormat,
    file_name: &str,
    content: &[u8],
) -> TinyImage {
    let image = build(format, file_name, content);
    std::fs::create_dir_all(dir).expect("create image dir");
    std::fs::write(dir.join(hex(&image.layer_digest)), &image.layer).expect("write layer");
    std::fs::write(dir.join(hex(&image.config_digest)), &image.config).expect("write config");
    std::fs::write(dir.join("manifest.json"), &image.manifest).expect("write manifest");
    std::fs::write(dir.join("version"), "Directory Transport Version: 1.1\n")
        .expect("write version");
    image
}

/// A POSIX ustar archive with one regular file (mode 0644, owner 0:0, mtime 0).
fn tar_one_file(name: &str, content: &[u8]) -> Vec<u8> {
    assert!(name.len() < 100, "tar name too long");
    let mut header = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, bytes: &[u8]| {
        h[at..at + bytes.len()].copy_from_slice(bytes);
    };
    put(&mut header, 0, name.as_bytes());
    put(&mut header, 100, b"0000644\0");
    put(&mut header, 108, b"0000000\0");
    put(&mut header, 116, b"0000000\0");
    put(
        &mut header,
        124,
        format!("{:011o}\0", content.len()).as_bytes(),
    );
    put(&mut header, 136, b"00000000000\0");
    put(&mut header, 148, b"        ");
    header[156] = b'0';
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    put(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());

    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// A gzip member holding `data` in stored (uncompressed) deflate blocks:
/// valid gzip without a compression library.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = data.chunks(0xffff).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let len = chunk.len() as u16;
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE, reflected), as gzip's trailer wants it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_image_has_docker_media_types() {
        let dir = tempfile::tempdir().unwrap();
        let img = write_dir_image(dir.path(), ManifestFormat::DockerV2S2, "a", b"b");
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(m["mediaType"], DOCKER_MANIFEST);
        assert_eq!(m["layers"][0]["digest"], img.layer_digest.as_str());
        assert!(dir.path().join(hex(&img.config_digest)).is_file());
    }

    #[test]
    fn layout_is_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let img = write_oci_layout(dir.path(), "v1", "hello.txt", b"hi\n");
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(&img.layer[..2], &[0x1f, 0x8b]);
        // gzip itself accepts the member and yields the tar whose digest is the diff id.
        let out = std::process::Command::new("gzip")
            .args(["-dc", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin.take().unwrap().write_all(&img.layer)?;
                c.wait_with_output()
            })
            .expect("run gzip");
        assert!(out.status.success());
        assert_eq!(sha256_digest(&out.stdout), img.diff_id);
        let hex = img.manifest_digest.trim_start_matches("sha256:");
        let m = std::fs::read(dir.path().join("blobs/sha256").join(hex)).unwrap();
        assert_eq!(sha256_digest(&m), img.manifest_digest);
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(
            index["manifests"][0]["digest"],
            img.manifest_digest.as_str()
        );
    }
}
