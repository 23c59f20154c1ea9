//! Which bodies are masked, compressed bodies, and the configuration section.

use gitgate_core::config::GateConfig;
use gitgate_core::mask::{
    BodyKind, Chunk, CompressedPolicy, GitBody, Masking, MaskingSection, MissingContentType,
    ResponseMasker, ResponsePlan,
};
use serde_json::json;

use crate::support::{Fake, assert_absent, masking, parse_json, with};

#[test]
fn content_types_choose_the_masker() {
    let masking = masking();
    let kind = |t: Option<&str>| masking.kind(t);
    assert_eq!(
        kind(Some("application/x-git-upload-pack-result")),
        Some(BodyKind::Git(GitBody::UploadPackResult))
    );
    assert_eq!(
        kind(Some("application/x-git-receive-pack-result")),
        Some(BodyKind::Git(GitBody::ReceivePackResult))
    );
    assert_eq!(
        kind(Some("application/x-git-receive-pack-advertisement")),
        Some(BodyKind::Git(GitBody::Advertisement))
    );
    assert_eq!(kind(Some("application/x-git-packed-objects")), None);
    assert_eq!(
        kind(Some("application/json; charset=utf-8")),
        Some(BodyKind::Json)
    );
    assert_eq!(
        kind(Some("application/vnd.github+json")),
        Some(BodyKind::Json)
    );
    assert_eq!(
        kind(Some("application/vnd.git-lfs+json")),
        Some(BodyKind::Json)
    );
    assert_eq!(kind(Some("text/plain;charset=utf-8")), Some(BodyKind::Text));
    assert_eq!(kind(Some("text/x-diff")), Some(BodyKind::Text));
    assert_eq!(
        kind(Some("application/vnd.github.v3.raw; charset=utf-8")),
        Some(BodyKind::Text)
    );
    assert_eq!(
        kind(Some("application/vnd.github.v3.diff")),
        Some(BodyKind::Text)
    );
    assert_eq!(kind(Some("image/png")), None);
    assert_eq!(kind(Some("application/octet-stream")), None);
    assert_eq!(kind(Some("application/x-gzip")), None);
    assert_eq!(kind(None), Some(BodyKind::Text));
    assert_eq!(kind(Some("  ")), Some(BodyKind::Text));
}

#[test]
fn the_lists_are_configurable() {
    let mut section = MaskingSection::default();
    section
        .content_types
        .text
        .push("application/octet-stream".into());
    section.content_types.missing = MissingContentType::Pass;
    section.git = false;
    let masking = with(section);
    assert_eq!(
        masking.kind(Some("application/octet-stream")),
        Some(BodyKind::Text)
    );
    assert_eq!(masking.kind(None), None);
    assert_eq!(
        masking.kind(Some("application/x-git-upload-pack-result")),
        None
    );
}

#[test]
fn paths_choose_the_routes() {
    let section = MaskingSection {
        paths: vec!["api/**".into(), "*/info/refs".into()],
        ..MaskingSection::default()
    };
    let masking = with(section);
    assert!(masking.masks_path("/api/v3/repos/o/r/contents/x"));
    assert!(masking.masks_path("/demo.git/info/refs"));
    assert!(!masking.masks_path("/raw/o/r/main/x"));
    assert!(masks_everything(crate::support::masking()));
}

fn masks_everything(masking: &Masking) -> bool {
    ["/", "/a", "/a/b/c.git/git-upload-pack"]
        .iter()
        .all(|p| masking.masks_path(p))
}

#[test]
fn a_compressed_body_is_withheld_by_default_in_its_own_format() {
    let masking = masking();
    let plan = masking.plan(Some("application/json"), Some("gzip"));
    assert_eq!(
        plan,
        ResponsePlan::Withhold {
            kind: BodyKind::Json,
            encoding: "gzip".into()
        }
    );
    assert!(plan.changes_body());
    let mut fake = Fake::new(50);
    let pat = fake.github_pat();
    // Whatever the compressed bytes are, none of them passes.
    let compressed = {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder
            .write_all(format!(r#"{{"token":"{pat}"}}"#).as_bytes())
            .expect("in memory");
        encoder.finish().expect("in memory")
    };
    let mut masker = ResponseMasker::new(masking, plan);
    let mut out = Vec::new();
    for chunk in compressed.chunks(7) {
        let mut replaced = Vec::new();
        assert_eq!(masker.feed(chunk, &mut replaced), Chunk::Replaced);
        out.extend(replaced);
    }
    masker.finish(&mut out);
    let notice = parse_json(&out);
    assert!(
        notice["message"]
            .as_str()
            .is_some_and(|m| m.contains("content-encoding gzip"))
    );
    assert_absent(&out, &[&pat]);

    for (kind, content_type) in [
        (
            GitBody::UploadPackResult,
            "application/x-git-upload-pack-result",
        ),
        (
            GitBody::ReceivePackResult,
            "application/x-git-receive-pack-result",
        ),
        (
            GitBody::Advertisement,
            "application/x-git-upload-pack-advertisement",
        ),
    ] {
        let plan = masking.plan(Some(content_type), Some("br"));
        assert!(matches!(plan, ResponsePlan::Withhold { kind: k, .. } if k == BodyKind::Git(kind)));
        let mut out = Vec::new();
        ResponseMasker::new(masking, plan).feed(b"\x1f\x8b", &mut out);
        crate::support::packets(&out, 1000);
    }
}

#[test]
fn a_compressed_body_may_pass_by_policy() {
    let section = MaskingSection {
        compressed: CompressedPolicy::Pass,
        ..MaskingSection::default()
    };
    let masking = with(section);
    let plan = masking.plan(Some("text/plain"), Some("identity, zstd"));
    assert_eq!(
        plan,
        ResponsePlan::PassCompressed {
            kind: BodyKind::Text,
            encoding: "zstd".into()
        }
    );
    assert!(!plan.changes_body());
    let mut out = Vec::new();
    assert_eq!(
        ResponseMasker::new(&masking, plan).feed(b"\x28\xb5\x2f\xfd", &mut out),
        Chunk::Unchanged
    );
}

#[test]
fn identity_encoding_is_masked_and_unlisted_types_pass() {
    let masking = masking();
    assert_eq!(
        masking.plan(Some("text/plain"), Some("identity")),
        ResponsePlan::Mask(BodyKind::Text)
    );
    assert_eq!(
        masking.plan(Some("image/png"), Some("gzip")),
        ResponsePlan::Pass
    );
    let mut out = Vec::new();
    assert_eq!(
        ResponseMasker::new(masking, ResponsePlan::Pass).feed(b"anything", &mut out),
        Chunk::Unchanged
    );
}

#[test]
fn the_configuration_section_has_safe_defaults_and_refuses_unknown_fields() {
    let config = GateConfig::from_value(json!({"approval": {"cluster": "c"}})).expect("valid");
    assert_eq!(config.config.masking, MaskingSection::default());
    assert!(config.config.masking.enabled);
    assert_eq!(config.config.masking.compressed, CompressedPolicy::Withhold);
    let masking = Masking::from_config(&config)
        .expect("compiles")
        .expect("enabled");
    assert!(masking.masks_path("/x"));

    let err =
        GateConfig::from_value(json!({"approval": {"cluster": "c"}, "masking": {"colour": 1}}))
            .expect_err("unknown field");
    assert_eq!(err.to_string(), "masking.colour: unknown field");
    let err = GateConfig::from_value(
        json!({"approval": {"cluster": "c"}, "masking": {"mask": {"fill": "\\"}}}),
    )
    .expect_err("bad fill");
    assert_eq!(err.field, "masking.mask.fill");
    let err = GateConfig::from_value(
        json!({"approval": {"cluster": "c"}, "masking": {"compressed": "inflate"}}),
    )
    .expect_err("bad policy");
    assert_eq!(err.field, "masking.compressed");
    let err =
        GateConfig::from_value(json!({"approval": {"cluster": "c"}, "scan": {"disabled": []}}))
            .expect_err("unknown scan field");
    assert!(err.field.starts_with("scan"), "{err}");

    let off = GateConfig::from_value(
        json!({"approval": {"cluster": "c"}, "masking": {"enabled": false}}),
    )
    .expect("valid");
    assert!(Masking::from_config(&off).expect("valid").is_none());
}

#[test]
fn the_scan_section_changes_what_is_masked() {
    let config = GateConfig::from_value(json!({
        "approval": {"cluster": "c"},
        "masking": {"mask": {"keep_prefix": false, "fill": "#", "tag": "<{rule}>"}},
        "scan": {
            "disable": ["aws-access-key-id"],
            "rules": [{"id": "acme-token", "keywords": ["acme_"], "pattern": "\\b(acme_[a-z0-9]{24})\\b"}]
        }
    }))
    .expect("valid");
    let masking = Masking::from_config(&config)
        .expect("compiles")
        .expect("enabled");
    let mut fake = Fake::new(51);
    let aws = fake.aws_key_id();
    let body = format!("{aws} acme_0123456789abcdefghijklmn\n");
    let (out, _) = crate::support::mask_whole(&masking, BodyKind::Text, body.as_bytes());
    assert_eq!(
        String::from_utf8(out).expect("utf-8"),
        format!("{aws} #<acme-token>\n")
    );

    let bad = GateConfig::from_value(json!({
        "approval": {"cluster": "c"},
        "scan": {"rules": [{"id": "x", "keywords": ["ab"], "pattern": "("}]}
    }))
    .expect("serde accepts it");
    assert_eq!(
        Masking::from_config(&bad)
            .expect_err("does not compile")
            .field,
        "scan"
    );
}
