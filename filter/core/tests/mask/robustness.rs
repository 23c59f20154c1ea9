//! Random bodies built from the pieces the parsers care about: no panic, and the same output
//! whatever the chunking.

use gitgate_core::mask::{BodyKind, GitBody};

use crate::support::{Fake, mask_in, masking};

/// Fragments that steer the parsers into their corners.
const PIECES: &[&[u8]] = &[
    b"0000",
    b"0001",
    b"0002",
    b"0004",
    b"0005\x01",
    b"0005\x02",
    b"000a\x02abcde",
    b"0009\x01PACK",
    b"0010\x03fatal: x\n",
    b"000bhello\n",
    b"fff0",
    b"zzzz",
    b"PACK",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"\"",
    b"\"content\"",
    b"\"body\"",
    b"\\",
    b"\\n",
    b"\\u",
    b"\\ud83d",
    b"\\ude2d",
    b"\\u00e9",
    b"QUJD",
    b"QQ==",
    b"=",
    b"\n",
    b"\r\n",
    b" ",
    b"\xc3\xa9",
    b"\xf0\x9f\x94",
    b"\x80",
    b"token = ",
    b"password: \"",
    b"-----BEGIN RSA PRIVATE KEY-----",
];

fn random_body(fake: &mut Fake) -> Vec<u8> {
    let mut body = Vec::new();
    let pieces = 1 + (fake.bytes(1)[0] as usize % 40);
    for _ in 0..pieces {
        let pick = fake.bytes(1)[0] as usize;
        match pick % 10 {
            0 => body.extend(fake.github_pat().as_bytes()),
            1 => body.extend(fake.aws_key_id().as_bytes()),
            _ => body.extend(PIECES[pick % PIECES.len()]),
        }
    }
    body
}

#[test]
fn random_bodies_mask_the_same_at_any_chunking_and_never_panic() {
    let mut fake = Fake::new(70);
    let kinds = [
        BodyKind::Text,
        BodyKind::Json,
        BodyKind::Git(GitBody::UploadPackResult),
        BodyKind::Git(GitBody::ReceivePackResult),
        BodyKind::Git(GitBody::Advertisement),
    ];
    for round in 0..300 {
        let body = random_body(&mut fake);
        for kind in kinds {
            let whole = mask_in(masking(), kind, &body, &[]);
            let cuts: Vec<usize> = (0..4)
                .map(|_| 1 + fake.bytes(1)[0] as usize % (body.len() + 1))
                .collect();
            let chunked = mask_in(masking(), kind, &body, &cuts);
            let bytewise = mask_in(masking(), kind, &body, &vec![1; body.len()]);
            assert!(
                bytewise == whole,
                "round {round} {kind:?} bytewise: {:?} vs {:?} body {:?}",
                String::from_utf8_lossy(&whole),
                String::from_utf8_lossy(&bytewise),
                String::from_utf8_lossy(&body)
            );
            assert!(
                chunked == whole,
                "round {round}, {kind:?}, cuts {cuts:?}:\n{:?}\n{:?}\nbody {:?}",
                String::from_utf8_lossy(&whole),
                String::from_utf8_lossy(&chunked),
                String::from_utf8_lossy(&body)
            );
        }
    }
}
