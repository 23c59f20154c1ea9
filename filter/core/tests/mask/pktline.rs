//! git's answers: side-band 2 and 3, report-status lines in band 1, `ERR` lines, pack data.

use gitgate_core::mask::{BodyKind, Chunk, Fallback, GitBody, Place, ResponseMasker, ResponsePlan};

use crate::support::{
    Fake, Packet, assert_absent, assert_every_split, band, band_pkt, find, mask_whole, masking,
    packets, pkt,
};

const PUSH: BodyKind = BodyKind::Git(GitBody::ReceivePackResult);
const FETCH: BodyKind = BodyKind::Git(GitBody::UploadPackResult);
const ADVERTISEMENT: BodyKind = BodyKind::Git(GitBody::Advertisement);

/// A push answer: hook output with a token split across two band-2 packets, a report whose `ng`
/// reason names a key and whose line is split across two band-1 packets, more band 2, flush.
fn push_answer(pat: &str, aws: &str) -> Vec<u8> {
    let mut report = Vec::new();
    report.extend(pkt(b"unpack ok\n"));
    report.extend(pkt(format!(
        "ng refs/heads/main pre-receive hook declined: found {aws}\n"
    )
    .as_bytes()));
    report.extend(b"0000");
    let (report_a, report_b) = report.split_at(30);

    let hook = format!("remote: deploying with GITHUB_TOKEN={pat}\n");
    let (hook_a, hook_b) = hook.split_at(40);

    let mut body = Vec::new();
    body.extend(band_pkt(2, hook_a.as_bytes()));
    body.extend(band_pkt(2, hook_b.as_bytes()));
    body.extend(b"0005\x01"); // keepalive
    body.extend(band_pkt(1, report_a));
    body.extend(band_pkt(1, report_b));
    body.extend(band_pkt(2, b"post-receive: done\n"));
    body.extend(b"0000");
    body
}

#[test]
fn a_push_answer_is_masked_in_band_2_and_in_the_report_at_every_split() {
    let mut fake = Fake::new(10);
    let (pat, aws) = (fake.github_pat(), fake.aws_key_id());
    let body = push_answer(&pat, &aws);
    let (out, report) = mask_whole(masking(), PUSH, &body);

    let outer = packets(&out, 1000);
    assert_eq!(outer.last(), Some(&Packet::Flush));
    assert_eq!(
        String::from_utf8(band(&outer, 2)).expect("utf-8"),
        "remote: deploying with GITHUB_TOKEN=ghp_****[gitgate:github-pat-classic]\n\
         post-receive: done\n"
    );
    let inner = packets(&band(&outer, 1), usize::MAX);
    assert_eq!(
        inner,
        vec![
            Packet::Data(b"unpack ok\n".to_vec()),
            Packet::Data(
                b"ng refs/heads/main pre-receive hook declined: found \
                  AKIA****[gitgate:aws-access-key-id]\n"
                    .to_vec()
            ),
            Packet::Flush,
        ]
    );
    assert!(
        outer.contains(&Packet::Data(vec![1])),
        "the keepalive stays"
    );
    assert_eq!(report.masked, 2);
    assert!(report.secrets.iter().any(|s| s.place == Place::Band(2)));
    assert!(report.secrets.iter().any(|s| s.place == Place::Report));
    assert_absent(&out, &[&pat, &aws]);
    assert_every_split(masking(), PUSH, &body, &out);
}

/// A fetch answer: NAK, progress, pack data that happens to hold token-shaped text, a warning
/// with a token in band 2, more pack data, flush.
fn fetch_answer(fake: &mut Fake, pat: &str) -> (Vec<u8>, Vec<u8>) {
    let mut pack = b"PACK\0\0\0\x02\0\0\0\x03".to_vec();
    pack.extend(fake.bytes(700));
    pack.extend(format!("blob text {pat} inside the pack").as_bytes());
    pack.extend(fake.bytes(900));
    let mut body = Vec::new();
    body.extend(pkt(b"NAK\n"));
    body.extend(band_pkt(2, b"Enumerating objects: 3, done.\n"));
    for piece in pack.chunks(600) {
        body.extend(band_pkt(1, piece));
    }
    body.extend(band_pkt(
        2,
        format!("warning: leaked {pat} in a hook\n").as_bytes(),
    ));
    body.extend(b"0000");
    (body, pack)
}

#[test]
fn a_fetch_answer_keeps_its_pack_and_masks_its_progress_at_every_split() {
    let mut fake = Fake::new(11);
    let pat = fake.github_pat();
    let (body, pack) = fetch_answer(&mut fake, &pat);
    let (out, report) = mask_whole(masking(), FETCH, &body);
    let outer = packets(&out, 1000);
    assert_eq!(outer.first(), Some(&Packet::Data(b"NAK\n".to_vec())));
    assert_eq!(band(&outer, 1), pack, "pack data is never changed");
    assert_eq!(
        String::from_utf8(band(&outer, 2)).expect("utf-8"),
        "Enumerating objects: 3, done.\nwarning: leaked ghp_****[gitgate:github-pat-classic] \
         in a hook\n"
    );
    assert_eq!(report.masked, 1);
    assert_every_split(masking(), FETCH, &body, &out);
}

#[test]
fn pack_data_may_be_skipped_unread() {
    let mut fake = Fake::new(12);
    let pat = fake.github_pat();
    let (body, _) = fetch_answer(&mut fake, &pat);
    let (expected, _) = mask_whole(masking(), FETCH, &body);
    for chunk_len in [1, 7, 100, 600, 605, 4096] {
        let mut masker = ResponseMasker::new(masking(), ResponsePlan::Mask(FETCH));
        let mut out = Vec::new();
        let mut skipped = 0;
        for chunk in body.chunks(chunk_len) {
            if masker.passthrough_len() >= chunk.len() as u64 {
                masker.skip(chunk.len() as u64);
                out.extend_from_slice(chunk);
                skipped += chunk.len();
                continue;
            }
            let mut replaced = Vec::new();
            match masker.feed(chunk, &mut replaced) {
                Chunk::Unchanged => out.extend_from_slice(chunk),
                Chunk::Replaced => out.extend(replaced),
            }
        }
        masker.finish(&mut out);
        assert_eq!(out, expected, "chunks of {chunk_len}");
        if chunk_len <= 100 {
            assert!(skipped > 1000, "most pack bytes were skipped ({skipped})");
        }
    }
}

#[test]
fn a_pack_without_side_band_is_copied_after_the_negotiation() {
    let mut fake = Fake::new(13);
    let pat = fake.github_pat();
    let mut body = pkt(b"NAK\n");
    let mut pack = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
    pack.extend(format!("{pat} raw").as_bytes());
    pack.extend(fake.bytes(50));
    body.extend(&pack);
    let (out, report) = mask_whole(masking(), FETCH, &body);
    assert_eq!(out, body);
    assert_eq!(report.masked, 0);
    assert_every_split(masking(), FETCH, &body, &out);
}

#[test]
fn an_advertisement_masks_an_err_line_and_keeps_its_ref_lines() {
    let mut fake = Fake::new(14);
    let pat = fake.github_pat();
    let oid = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
    let mut body = pkt(b"# service=git-upload-pack\n");
    body.extend(b"0000");
    body.extend(pkt(format!(
        "{oid} HEAD\0multi_ack side-band-64k ofs-delta\n"
    )
    .as_bytes()));
    body.extend(pkt(format!("{oid} refs/heads/main\n").as_bytes()));
    body.extend(b"0000");
    let ok = mask_whole(masking(), ADVERTISEMENT, &body).0;
    assert_eq!(ok, body, "an advertisement without secrets is unchanged");

    let mut refused = pkt(b"# service=git-upload-pack\n");
    refused.extend(b"0000");
    refused.extend(pkt(format!("ERR token {pat} has expired\n").as_bytes()));
    let (out, _) = mask_whole(masking(), ADVERTISEMENT, &refused);
    let found = packets(&out, 65520);
    assert_eq!(
        found.last(),
        Some(&Packet::Data(
            b"ERR token ghp_****[gitgate:github-pat-classic] has expired\n".to_vec()
        ))
    );
    assert_every_split(masking(), ADVERTISEMENT, &refused, &out);
}

#[test]
fn a_secret_split_across_two_text_lines_is_masked_in_the_first() {
    let mut fake = Fake::new(15);
    let pat = fake.github_pat();
    let (a, b) = pat.split_at(10);
    let mut body = pkt(format!("ERR {a}").as_bytes());
    body.extend(pkt(format!("{b} end\n").as_bytes()));
    let (out, _) = mask_whole(masking(), FETCH, &body);
    assert_eq!(
        packets(&out, 65520),
        vec![
            Packet::Data(b"ERR ghp_****[gitgate:github-pat-classic]".to_vec()),
            Packet::Data(b" end\n".to_vec()),
        ]
    );
    assert_every_split(masking(), FETCH, &body, &out);
}

#[test]
fn a_band_packet_that_grows_is_cut_at_the_side_band_limit() {
    let mut fake = Fake::new(16);
    // 45 keys of 21 bytes: 945 bytes, each mask adds 15.
    let keys: Vec<String> = (0..45).map(|_| fake.aws_key_id()).collect();
    let text = keys.iter().map(|k| format!("{k} ")).collect::<String>();
    assert!(text.len() <= 995);
    let mut body = band_pkt(2, text.as_bytes());
    body.extend(b"0000");
    let (out, report) = mask_whole(masking(), FETCH, &body);
    assert_eq!(report.masked, 45);
    let found = packets(&out, 1000);
    assert!(found.len() > 2, "the payload was cut into several packets");
    let expected = "AKIA****[gitgate:aws-access-key-id] ".repeat(45);
    assert_eq!(String::from_utf8(band(&found, 2)).expect("utf-8"), expected);
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_absent(&out, &key_refs);

    // Once a packet longer than 1000 bytes shows side-band-64k, packets may be longer.
    let mut large = band_pkt(1, &fake.bytes(2000));
    large.extend(band_pkt(2, text.as_bytes()));
    large.extend(b"0000");
    let (out, _) = mask_whole(masking(), FETCH, &large);
    let found = packets(&out, 65520);
    assert_eq!(
        found.len(),
        3,
        "one band-1, one band-2 packet and the flush"
    );
}

#[test]
fn a_text_line_that_would_outgrow_the_pkt_line_limit_is_masked_in_its_own_length() {
    let mut fake = Fake::new(17);
    let mut line = b"ERR ".to_vec();
    let mut keys = Vec::new();
    while line.len() + 21 < 65516 {
        let key = fake.aws_key_id();
        line.extend(key.as_bytes());
        line.push(b' ');
        keys.push(key);
    }
    line.resize(65516, b'.');
    let body = pkt(&line);
    let (out, report) = mask_whole(masking(), ADVERTISEMENT, &body);
    assert_eq!(report.masked, keys.len() as u64);
    let found = packets(&out, 65520);
    let [Packet::Data(payload)] = found.as_slice() else {
        panic!("one line expected, got {}", found.len());
    };
    assert_eq!(payload.len(), line.len());
    assert!(payload.starts_with(b"ERR ******************** ******************** "));
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_absent(&out, &key_refs);
}

#[test]
fn band_3_is_masked_and_band_2_goes_out_before_it() {
    let mut fake = Fake::new(18);
    let (pat, aws) = (fake.github_pat(), fake.aws_key_id());
    let mut body = band_pkt(2, format!("hook: using {aws}\n").as_bytes());
    body.extend(band_pkt(
        3,
        format!("fatal: bad credentials {pat}\n").as_bytes(),
    ));
    let (out, _) = mask_whole(masking(), PUSH, &body);
    let found = packets(&out, 1000);
    let bands: Vec<u8> = found
        .iter()
        .filter_map(|p| match p {
            Packet::Data(payload) => payload.first().copied(),
            _ => None,
        })
        .collect();
    assert_eq!(bands, vec![2, 3]);
    assert!(find(&band(&found, 3), b"ghp_****[gitgate:github-pat-classic]").is_some());
    assert_absent(&out, &[&pat, &aws]);
    assert_every_split(masking(), PUSH, &body, &out);
}

#[test]
fn a_v2_answer_with_delim_packets_is_masked_per_section() {
    let mut fake = Fake::new(19);
    let pat = fake.github_pat();
    let mut body = pkt(b"acknowledgments\n");
    body.extend(pkt(b"NAK\n"));
    body.extend(b"0001");
    body.extend(pkt(b"packfile\n"));
    body.extend(band_pkt(2, format!("remote message {pat}\n").as_bytes()));
    body.extend(band_pkt(1, b"PACK\0\0\0\x02\0\0\0\0"));
    body.extend(b"0000");
    let (out, _) = mask_whole(masking(), FETCH, &body);
    let found = packets(&out, 1000);
    assert_eq!(found[0], Packet::Data(b"acknowledgments\n".to_vec()));
    assert_eq!(found[2], Packet::Delim);
    assert_eq!(found[3], Packet::Data(b"packfile\n".to_vec()));
    assert_absent(&out, &[&pat]);
    assert_every_split(masking(), FETCH, &body, &out);
}

#[test]
fn broken_framing_masks_the_rest_as_text() {
    let mut fake = Fake::new(20);
    let pat = fake.github_pat();
    let mut body = pkt(b"NAK\n");
    body.extend(format!("zzzz this is not a pkt-line: {pat}\n").as_bytes());
    let (out, report) = mask_whole(masking(), FETCH, &body);
    assert_eq!(report.fallback, Some(Fallback::PktFraming { offset: 8 }));
    assert!(out.starts_with(b"0008NAK\nzzzz this is not a pkt-line: ghp_****"));
    assert_absent(&out, &[&pat]);
    assert_every_split(masking(), FETCH, &body, &out);
}

#[test]
fn a_truncated_answer_never_passes_a_secret() {
    let mut fake = Fake::new(21);
    let pat = fake.github_pat();
    let body = band_pkt(2, format!("remote: {pat} and more text").as_bytes());
    for cut in 0..body.len() {
        let (out, _) = mask_whole(masking(), PUSH, &body[..cut]);
        assert_absent(&out, &[&pat]);
    }
}

#[test]
fn malformed_lengths_are_text_not_panics() {
    for body in [
        &b"0003"[..],
        b"fff1xxxx",
        b"00",
        b"0004",
        b"0005\x02",
        b"000a\x04abcde",
        b"PACK",
        b"\xff\xfe\xfd\xfc",
    ] {
        for kind in [PUSH, FETCH, ADVERTISEMENT] {
            let _ = mask_whole(masking(), kind, body);
        }
    }
}

#[test]
fn a_keepalive_never_overtakes_a_held_v2_section_header() {
    // upload-pack v2 sends keepalives while pack-objects is slow to start; git dies with
    // "expected 'packfile'" if one arrives before the section header.
    let mut body = pkt(b"packfile\n");
    body.extend(b"0005\x01");
    body.extend(band_pkt(2, b"Enumerating objects: 3, done.\n"));
    body.extend(band_pkt(1, b"PACK\0\0\0\x02\0\0\0\0"));
    body.extend(b"0000");
    let (out, _) = mask_whole(masking(), FETCH, &body);
    let outer = packets(&out, 1000);
    assert_eq!(outer.first(), Some(&Packet::Data(b"packfile\n".to_vec())));
    assert_eq!(outer.get(1), Some(&Packet::Data(vec![1])), "{outer:?}");
    for cut in 1..body.len() {
        let out = crate::support::mask_in(masking(), FETCH, &body, &[cut]);
        let outer = packets(&out, 1000);
        assert_eq!(
            outer.first(),
            Some(&Packet::Data(b"packfile\n".to_vec())),
            "cut at {cut}"
        );
    }
}
