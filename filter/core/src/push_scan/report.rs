//! What git prints for a push refused for its secrets, and what the filter logs about them.
//!
//! The pusher sees, as `remote:` lines before the per-ref statuses: how many secrets, one line
//! per finding (rule, object id, line, and path and commit when known, and the fingerprint,
//! never the value), then how to remove them, that the credential must be rotated, and how to
//! ask for a bypass. Every ref gets `ng <ref> gitgate:deny:secret-detected <first finding>`.

use crate::decision::Refusal;
use crate::object::ObjectKind;
use crate::push_scan::{LimitHit, NotRebuilt, PushFinding, ScanReport};
use crate::reason::Reason;
use crate::report::RefRefusal;

/// Code of a push refused because it carries secrets.
pub const SECRET_DETECTED: &str = "gitgate:deny:secret-detected";

/// Code of a push refused because it went past a scanning limit (`on_limit: block`).
pub const SCAN_LIMIT: &str = "gitgate:deny:secret-scan-limit";

/// The most findings listed one per line in git's answer; the rest are counted.
pub const MAX_LISTED: usize = 10;

/// How many hex digits of an id the per-ref reason shows.
const SHORT_ID: usize = 12;

/// One line about a finding: rule, object, line, path and commit, fingerprint.
pub fn describe(finding: &PushFinding) -> String {
    let rule = &finding.rule;
    let fingerprint = &finding.fingerprint;
    let place = match (finding.kind, finding.id, finding.line) {
        (Some(kind), Some(id), Some(line)) => {
            let mut place = format!("{kind} {id} line {line}");
            match kind {
                ObjectKind::Blob => match (&finding.path, &finding.commit) {
                    (Some(path), Some(commit)) => {
                        place.push_str(&format!(" ({path} in commit {commit})"));
                    }
                    _ => place.push_str(" (path unknown)"),
                },
                ObjectKind::Commit | ObjectKind::Tag => {
                    if let Some(message_line) = finding.message_line {
                        place.push_str(&format!(" (message line {message_line})"));
                    }
                }
                ObjectKind::Tree => {}
            }
            place
        }
        (Some(ObjectKind::Tree), Some(id), None) => {
            format!(
                "the name of an entry of tree {id} at byte {} (a file or directory name)",
                finding.offset
            )
        }
        (Some(kind), Some(id), None) => {
            let mut place = format!("{kind} {id} at byte {} (binary)", finding.offset);
            match (&finding.path, &finding.commit) {
                (Some(path), Some(commit)) => {
                    place.push_str(&format!(" ({path} in commit {commit})"));
                }
                _ => place.push_str(" (path unknown)"),
            }
            place
        }
        _ => match finding.delta_base {
            Some(base) => format!(
                "byte {} of a new version of object {base} (a delta; its id is unknown)",
                finding.offset
            ),
            None => format!(
                "byte {} of a delta object whose base is not in the pack (its id is unknown)",
                finding.offset
            ),
        },
    };
    format!("secret {rule} in {place}, fingerprint {fingerprint}")
}

/// The short form for a per-ref reason: rule, kind, short id, line.
fn short(finding: &PushFinding) -> String {
    match (finding.kind, finding.id, finding.line) {
        (Some(kind), Some(id), Some(line)) => {
            let hex = id.to_string();
            let short = hex.get(..SHORT_ID).unwrap_or(&hex);
            format!("{} in {kind} {short} line {line}", finding.rule)
        }
        (Some(ObjectKind::Tree), Some(id), None) => {
            let hex = id.to_string();
            let short = hex.get(..SHORT_ID).unwrap_or(&hex);
            format!(
                "{} in a file or directory name (tree {short})",
                finding.rule
            )
        }
        (Some(kind), Some(id), None) => {
            let hex = id.to_string();
            let short = hex.get(..SHORT_ID).unwrap_or(&hex);
            format!(
                "{} in {kind} {short} at byte {}",
                finding.rule, finding.offset
            )
        }
        _ => format!("{} in a delta at byte {}", finding.rule, finding.offset),
    }
}

/// The `remote:` lines listing the findings, at most [`MAX_LISTED`] of them.
pub fn finding_lines(report: &ScanReport) -> Vec<String> {
    let mut lines: Vec<String> = report
        .findings
        .iter()
        .take(MAX_LISTED)
        .map(|f| format!("gitgate: {}", describe(f)))
        .collect();
    let more = report.findings.len().saturating_sub(MAX_LISTED);
    if more > 0 {
        lines.push(format!("gitgate: ... and {more} more"));
    }
    if report.findings_capped {
        lines.push(format!(
            "gitgate: scanning stopped after {} findings; there may be more",
            report.findings.len()
        ));
    }
    lines
}

/// The headline: how many secrets.
fn headline(report: &ScanReport) -> String {
    match report.findings.len() {
        1 => "1 secret in the pushed objects (values are not shown)".to_owned(),
        n => format!("{n} secrets in the pushed objects (values are not shown)"),
    }
}

/// The refusal of a push carrying secrets, for every ref in `refnames`. `bypass_option` is the
/// push option that asks for a review; `note` is one more line (why a bypass did not apply).
pub fn refusal(
    refnames: &[String],
    report: &ScanReport,
    bypass_option: &str,
    note: Option<&str>,
) -> Refusal {
    let detail = match report.findings.first() {
        Some(first) if report.findings.len() > 1 => {
            format!("{} (+{} more)", short(first), report.findings.len() - 1)
        }
        Some(first) => short(first),
        None => "secrets found".to_owned(),
    };
    let reason = Reason::new(SECRET_DETECTED, &detail);
    let mut info = vec![format!("gitgate: push refused: {}", headline(report))];
    info.extend(finding_lines(report));
    if let Some(note) = note {
        info.push(format!("gitgate: {note}"));
    }
    info.extend([
        "gitgate: to push, remove each secret from every commit that has it, then push again:"
            .to_owned(),
        "gitgate: - in the last commit: fix the file (or the message), git add it, \
         git commit --amend"
            .to_owned(),
        "gitgate: - in older commits: git rebase -i <upstream branch>, mark them 'edit', fix \
         and git commit --amend each, git rebase --continue"
            .to_owned(),
        "gitgate: rotate each credential: once committed it must be treated as leaked".to_owned(),
        format!(
            "gitgate: not a secret, or needed as is? push with -o {bypass_option}=\"<why>\" to \
             ask the security reviewers"
        ),
    ]);
    Refusal {
        code: SECRET_DETECTED.to_owned(),
        refs: refs(refnames, &reason),
        info,
    }
}

/// The refusal of a push that went past a scanning limit under `on_limit: block`.
pub fn limit_refusal(refnames: &[String], limits: &[LimitHit]) -> Refusal {
    let detail = limits
        .first()
        .map_or_else(|| "scan limit".to_owned(), scan_limit_short);
    let reason = Reason::new(SCAN_LIMIT, &detail);
    let mut info = vec!["gitgate: push refused: it could not be scanned for secrets whole".into()];
    info.extend(
        limits
            .iter()
            .map(|hit| format!("gitgate: {}", hit.describe())),
    );
    let mut advice: Vec<&str> = limits.iter().map(LimitHit::advice).collect();
    advice.dedup();
    info.extend(advice.into_iter().map(|line| format!("gitgate: {line}")));
    Refusal {
        code: SCAN_LIMIT.to_owned(),
        refs: refs(refnames, &reason),
        info,
    }
}

fn scan_limit_short(hit: &LimitHit) -> String {
    match hit {
        LimitHit::ObjectTooLarge { size, max, .. } => {
            format!("an object of {size} bytes is over the scan limit of {max}")
        }
        LimitHit::PushTooLarge { max, .. } => {
            format!("the objects are over the scan limit of {max} bytes")
        }
        LimitHit::TooSlow { max_ms, .. } => {
            format!("scanning took more than the limit of {max_ms} ms")
        }
        LimitHit::DeltaNotRebuilt { entry, reason, .. } => match reason {
            NotRebuilt::BaseNotInPack { .. } => {
                format!("the delta at byte {entry} has no base in the pack (a thin pack)")
            }
            NotRebuilt::BaseNotKept { budget } => format!(
                "the delta at byte {entry} is over the {} MiB delta budget",
                budget >> 20
            ),
        },
    }
}

fn refs(refnames: &[String], reason: &Reason) -> Vec<RefRefusal> {
    refnames
        .iter()
        .map(|refname| RefRefusal {
            refname: refname.clone(),
            reason: reason.clone(),
        })
        .collect()
}

/// Adds the finding lines in front of a refusal the service gave to a push with findings (a
/// hold for the security reviewers), so the pusher sees what is under review.
pub fn with_findings(mut refusal: Refusal, report: &ScanReport) -> Refusal {
    let mut info = vec![format!("gitgate: {}", headline(report))];
    info.extend(finding_lines(report));
    info.append(&mut refusal.info);
    refusal.info = info;
    refusal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::object_id;
    use crate::receive_pack::ObjectFormat;
    use gitgate_scan::Fingerprint;

    fn finding(kind: Option<ObjectKind>) -> PushFinding {
        let id = object_id(ObjectFormat::Sha1, ObjectKind::Blob, b"x");
        PushFinding {
            rule: "github-pat-classic".into(),
            kind,
            id: kind.map(|_| id),
            delta_base: None,
            line: kind.map(|_| 3),
            column: kind.map(|_| 9),
            message_line: None,
            offset: 40,
            entry: 100,
            path: Some("config/app.env".into()),
            commit: Some(id),
            fingerprint: Fingerprint([0xab; 16]),
        }
    }

    #[test]
    fn a_blob_finding_names_rule_object_line_path_and_fingerprint() {
        let text = describe(&finding(Some(ObjectKind::Blob)));
        assert_eq!(
            text,
            "secret github-pat-classic in blob c1b0730e0133447badcfd47fd144e254807b06e1 line 3 \
             (config/app.env in commit c1b0730e0133447badcfd47fd144e254807b06e1), fingerprint \
             abababababababababababababababab"
        );
    }

    #[test]
    fn a_refusal_lists_findings_and_how_to_fix_them() {
        let report = ScanReport {
            findings: vec![finding(Some(ObjectKind::Blob)), finding(None)],
            ..ScanReport::default()
        };
        let refusal = refusal(&["refs/heads/main".into()], &report, "gitgate.bypass", None);
        assert_eq!(refusal.code, SECRET_DETECTED);
        assert_eq!(
            refusal.refs[0].reason.as_str(),
            "gitgate:deny:secret-detected github-pat-classic in blob c1b0730e0133 line 3 (+1 more)"
        );
        let info = refusal.info.join("\n");
        assert!(info.contains("2 secrets in the pushed objects"), "{info}");
        assert!(info.contains("byte 40 of a delta object"), "{info}");
        assert!(info.contains("git rebase -i"), "{info}");
        assert!(info.contains("rotate"), "{info}");
        assert!(info.contains("-o gitgate.bypass=\"<why>\""), "{info}");
    }
}
