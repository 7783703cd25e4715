//! The muxer's output read back by ffprobe (Debian's ffmpeg): codecs,
//! picture size and duration, and its structure checked without it.

use std::process::Command;

use super::*;

/// A VP8 frame whose header says 320x240 (a keyframe) or a delta frame.
fn vp8(key: bool, len: usize) -> Vec<u8> {
    let mut f = vec![0x42u8; len];
    if key {
        f[0] = 0x10;
        f[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        f[6..8].copy_from_slice(&320u16.to_le_bytes());
        f[8..10].copy_from_slice(&240u16.to_le_bytes());
    } else {
        f[0] = 0x11;
    }
    f
}

/// Three seconds of 30 fps video (a keyframe a second) and 20 ms audio.
fn three_seconds() -> Vec<u8> {
    let mut w = Webm::new(true, true);
    let mut file = Vec::new();
    // Audio before the first keyframe is dropped.
    file.extend(w.push(Media::Audio, 0, false, &[0xfc; 40]));
    assert!(file.is_empty(), "nothing before the first keyframe");
    let mut patches = Vec::new();
    for ms in (0..=3000u64).step_by(10) {
        if ms % 20 == 0 {
            file.extend(w.push(Media::Audio, ms, false, &[0xfc; 40]));
        }
        if ms % 30 == 0 {
            let key = (ms / 30) % 34 == 0;
            file.extend(w.push(Media::Video, ms, key, &vp8(key, 900)));
        }
    }
    let (tail, p) = w.finish();
    file.extend(tail);
    patches.extend(p);
    for patch in patches {
        let at = patch.offset as usize;
        file[at..at + patch.bytes.len()].copy_from_slice(&patch.bytes);
    }
    file
}

#[test]
fn vp8_keyframe_headers_give_the_picture_size() {
    assert_eq!(vp8_size(&vp8(true, 20)), Some((320, 240)));
    assert_eq!(vp8_size(&vp8(false, 20)), None);
    assert_eq!(vp8_size(&[0x10, 0, 0]), None);
    assert_eq!(vp8_size(&[]), None);
}

#[test]
fn the_file_starts_with_ebml_and_ends_with_a_whole_cluster() {
    let file = three_seconds();
    assert_eq!(&file[..4], &[0x1A, 0x45, 0xDF, 0xA3]);
    let webm = file.windows(4).position(|w| w == b"webm");
    assert!(webm.is_some(), "doc type");
    let clusters = file
        .windows(4)
        .filter(|w| *w == [0x1F, 0x43, 0xB6, 0x75])
        .count();
    assert!((3..=5).contains(&clusters), "{clusters} clusters");
}

#[test]
fn nothing_written_means_no_patches() {
    let mut w = Webm::new(true, false);
    assert!(w.push(Media::Video, 0, false, &vp8(false, 10)).is_empty());
    let (tail, patches) = w.finish();
    assert!(tail.is_empty() && patches.is_empty());
}

#[test]
fn ffprobe_reads_codecs_size_and_duration() {
    let probe = Command::new("ffprobe").arg("-version").output();
    if probe.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "ffprobe (Debian ffmpeg) is missing under CI"
        );
        eprintln!("skipped: no ffprobe here");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.webm");
    std::fs::write(&path, three_seconds()).expect("write");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .arg("stream=codec_name,width,height:format=duration,format_name")
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(&path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("codec_name=vp8"), "{text}");
    assert!(text.contains("codec_name=opus"), "{text}");
    assert!(
        text.contains("width=320") && text.contains("height=240"),
        "{text}"
    );
    assert!(text.contains("format_name=matroska,webm"), "{text}");
    let duration: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("duration="))
        .and_then(|d| d.parse().ok())
        .expect("a duration");
    assert!((duration - 3.0).abs() < 0.1, "duration {duration}");
}
