//! The push policy: ordered rules read from YAML, first match wins.
//!
//! A policy file looks like this (see `policy.example.yaml` for a longer one):
//!
//! ```yaml
//! rules:
//!   - name: protect main
//!     code: protected-ref
//!     match:
//!       refs: refs/heads/main
//!       operations: [create, update, delete]
//!     action: hold
//!     approvers: reviewers
//!     reason: refs/heads/main needs a reviewer's approval
//! default:
//!   action: allow
//! ```
//!
//! A push that carries secrets and asks for a bypass (`git push -o gitgate.bypass=<why>`) is held
//! before any rule is tried, on a ticket for the `secrets` section's approvers; once they
//! approved, the rules decide as for any push. The section is optional:
//!
//! ```yaml
//! secrets:
//!   approvers: security          # default
//!   code: secret-bypass          # default; the hold is gitgate:hold:secret-bypass
//!   reason: a security reviewer must approve the secrets in this push
//! ```
//!
//! Every `match` field is optional; a rule matches when all the fields it names match. A field
//! that takes strings takes one string or a list, and matches when any entry matches. Strings
//! are globs (`*` stays within one `/`-separated segment, `**` crosses segments). The policy is
//! compiled once at start-up; evaluating it does no I/O.

use std::path::{Path, PathBuf};

use gitgate_core::api::{Identity, Operation};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;

/// The policy used when `serve` is given no `--policy` file.
pub const DEFAULT_POLICY_YAML: &str = include_str!("default-policy.yaml");

/// The longest reason, in characters, a policy may give; reasons travel in one git status line.
pub const MAX_REASON_CHARS: usize = 200;

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The text is not YAML of the policy's shape (unknown field, wrong type, bad syntax).
    #[error("policy does not parse: {0}")]
    Syntax(#[from] serde_norway::Error),
    /// A rule or the default action has a field with a bad value.
    #[error("{place}: field `{field}`: {problem}")]
    Invalid {
        /// Which rule, for example `rule 2 "protect main"`, or `default`.
        place: String,
        /// The field, for example `match.refs`.
        field: &'static str,
        /// What is wrong, quoting the offending value.
        problem: String,
    },
}

/// What the policy says about one ref update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Let the update through.
    Allow,
    /// Refuse the update.
    Deny {
        /// The full code, `gitgate:deny:<slug>`.
        code: String,
        /// One line for the pusher.
        reason: String,
    },
    /// Keep the update until a reviewer of `approvers` decides it.
    Hold {
        /// The full code, `gitgate:hold:<slug>`.
        code: String,
        /// The group whose members may decide the ticket.
        approvers: String,
        /// One line for the pusher.
        reason: String,
    },
}

/// The facts about one ref update that rules match on.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The repository path, for example `org/app.git`.
    pub repository: &'a str,
    /// The full ref name.
    pub refname: &'a str,
    /// Create, update or delete.
    pub operation: Operation,
    /// Who is pushing.
    pub identity: &'a Identity,
}

/// The outcome of [`Policy::evaluate`]: which rule decided and what it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'p> {
    /// The name of the rule that matched, or `None` when the default action applied.
    pub rule: Option<&'p str>,
    /// What to do with the update.
    pub action: &'p Action,
}

/// A compiled policy.
#[derive(Debug)]
pub struct Policy {
    /// Tried in order; the first that matches decides.
    rules: Vec<Rule>,
    /// Applies when no rule matches.
    default: Action,
    /// Who decides secret bypasses.
    secrets: SecretsPolicy,
    /// How many distinct approvers the default action's holds need.
    default_approvals: u32,
}

/// How a push with secrets and a bypass reason is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsPolicy {
    /// The full hold code, `gitgate:hold:<slug>`.
    pub code: String,
    /// The group whose members may approve the secrets.
    pub approvers: String,
    /// One line for the pusher.
    pub reason: String,
    /// How many distinct members of `approvers` must approve.
    pub approvals: u32,
}

/// The most approvals a rule may ask for.
pub const MAX_APPROVALS: u32 = 10;

/// The default approver group of secret bypasses.
pub const DEFAULT_SECRET_APPROVERS: &str = "security";

/// The default code slug of secret bypass holds.
pub const DEFAULT_SECRET_CODE: &str = "secret-bypass";

/// The default reason of secret bypass holds.
pub const DEFAULT_SECRET_REASON: &str =
    "the push carries secrets; a security reviewer must approve the bypass";

impl Default for SecretsPolicy {
    fn default() -> Self {
        SecretsPolicy {
            code: format!("gitgate:hold:{DEFAULT_SECRET_CODE}"),
            approvers: DEFAULT_SECRET_APPROVERS.to_owned(),
            reason: DEFAULT_SECRET_REASON.to_owned(),
            approvals: 1,
        }
    }
}

#[derive(Debug)]
struct Rule {
    name: String,
    matcher: Matcher,
    action: Action,
    /// Distinct approvers a hold by this rule needs (1 unless `approvals` says more).
    approvals: u32,
}

/// The compiled `match` block; `None` fields match anything.
#[derive(Debug, Default)]
struct Matcher {
    repositories: Option<GlobSet>,
    refs: Option<GlobSet>,
    operations: Option<Vec<Operation>>,
    subjects: Option<GlobSet>,
    groups: Option<GlobSet>,
    agent: Option<bool>,
    acting_for: Option<GlobSet>,
}

impl Policy {
    /// The embedded default policy: hold every change of `refs/heads/main`, allow the rest.
    pub fn embedded_default() -> Result<Self, PolicyError> {
        Self::from_yaml(DEFAULT_POLICY_YAML)
    }

    /// Reads and compiles a policy file.
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// Compiles a policy from YAML text.
    pub fn from_yaml(text: &str) -> Result<Self, PolicyError> {
        let raw: RawPolicy = serde_norway::from_str(text)?;
        let mut rules: Vec<Rule> = Vec::with_capacity(raw.rules.len());
        for (index, raw_rule) in raw.rules.into_iter().enumerate() {
            let number = index + 1;
            if raw_rule.name.trim().is_empty() {
                return Err(invalid(
                    format!("rule {number}"),
                    "name",
                    "must not be empty",
                ));
            }
            let place = format!("rule {number} {:?}", raw_rule.name);
            if let Some(first) = rules.iter().position(|r| r.name == raw_rule.name) {
                let problem = format!("the name is already used by rule {}", first + 1);
                return Err(invalid(place, "name", problem));
            }
            let matcher = Matcher::compile(&place, raw_rule.matches)?;
            let approvals = check_approvals(&place, raw_rule.action, raw_rule.approvals)?;
            let raw_action = RawAction {
                action: raw_rule.action,
                code: raw_rule.code,
                reason: raw_rule.reason,
                approvers: raw_rule.approvers,
                approvals: None,
            };
            let action = raw_action.compile(&place, Some(&raw_rule.name))?;
            rules.push(Rule {
                name: raw_rule.name,
                matcher,
                action,
                approvals,
            });
        }
        let (default, default_approvals) = match raw.default {
            Some(raw_default) => {
                let approvals =
                    check_approvals("default", raw_default.action, raw_default.approvals)?;
                (raw_default.compile("default", None)?, approvals)
            }
            None => (Action::Allow, 1),
        };
        let secrets = match raw.secrets {
            Some(raw_secrets) => raw_secrets.compile()?,
            None => SecretsPolicy::default(),
        };
        Ok(Policy {
            rules,
            default,
            secrets,
            default_approvals,
        })
    }

    /// Decides one update: the first rule that matches, or the default action.
    pub fn evaluate(&self, input: &Input<'_>) -> Decision<'_> {
        self.rules
            .iter()
            .find(|rule| rule.matcher.matches(input))
            .map(|rule| Decision {
                rule: Some(&rule.name),
                action: &rule.action,
            })
            .unwrap_or(Decision {
                rule: None,
                action: &self.default,
            })
    }

    /// How pushes with secrets and a bypass reason are held.
    pub fn secrets(&self) -> &SecretsPolicy {
        &self.secrets
    }

    /// How many distinct reviewers must approve a ticket held by `rule` (the ticket's
    /// recorded rule name; `None` for the default action). Read when a decision is made, so a
    /// changed policy applies to tickets still pending.
    pub fn approvals_needed(&self, rule: Option<&str>) -> u32 {
        match rule {
            None => self.default_approvals,
            Some(crate::verdicts::SECRET_RULE) => self.secrets.approvals,
            Some(name) => self
                .rules
                .iter()
                .find(|r| r.name == name)
                .map_or(1, |r| r.approvals),
        }
    }

    /// How many rules the policy has, for the start-up log line.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
}

impl Matcher {
    fn compile(place: &str, raw: RawMatch) -> Result<Self, PolicyError> {
        let operations = match raw.operations {
            None => None,
            Some(names) => {
                let names = non_empty(place, "match.operations", names.0)?;
                let mut operations = Vec::with_capacity(names.len());
                for name in names {
                    operations.push(parse_operation(&name).ok_or_else(|| {
                        let problem = format!(
                            "unknown operation {name:?}, expected create, update or delete"
                        );
                        invalid(place, "match.operations", problem)
                    })?);
                }
                Some(operations)
            }
        };
        Ok(Matcher {
            repositories: globs(place, "match.repositories", raw.repositories)?,
            refs: globs(place, "match.refs", raw.refs)?,
            operations,
            subjects: globs(place, "match.subjects", raw.subjects)?,
            groups: globs(place, "match.groups", raw.groups)?,
            agent: raw.agent,
            acting_for: globs(place, "match.acting_for", raw.acting_for)?,
        })
    }

    fn matches(&self, input: &Input<'_>) -> bool {
        let identity = input.identity;
        matches_one(&self.repositories, input.repository)
            && matches_one(&self.refs, input.refname)
            && self
                .operations
                .as_ref()
                .is_none_or(|ops| ops.contains(&input.operation))
            && matches_one(&self.subjects, &identity.subject)
            && self
                .groups
                .as_ref()
                .is_none_or(|set| identity.groups.iter().any(|group| set.is_match(group)))
            && self.agent.is_none_or(|agent| agent == identity.agent)
            && self.acting_for.as_ref().is_none_or(|set| {
                identity
                    .acting_for
                    .as_deref()
                    .is_some_and(|person| set.is_match(person))
            })
    }
}

fn matches_one(set: &Option<GlobSet>, value: &str) -> bool {
    set.as_ref().is_none_or(|set| set.is_match(value))
}

fn parse_operation(name: &str) -> Option<Operation> {
    [Operation::Create, Operation::Update, Operation::Delete]
        .into_iter()
        .find(|operation| operation.as_str() == name)
}

fn globs(
    place: &str,
    field: &'static str,
    patterns: Option<OneOrMany>,
) -> Result<Option<GlobSet>, PolicyError> {
    let Some(patterns) = patterns else {
        return Ok(None);
    };
    let patterns = non_empty(place, field, patterns.0)?;
    let mut builder = GlobSetBuilder::new();
    for pattern in &patterns {
        // `*` must not cross `/`: `refs/heads/*` should not match `refs/heads/team/x`.
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| {
                invalid(
                    place,
                    field,
                    format!("invalid glob {pattern:?}: {}", e.kind()),
                )
            })?;
        builder.add(glob);
    }
    let set = builder
        .build()
        .map_err(|e| invalid(place, field, format!("the globs do not compile: {e}")))?;
    Ok(Some(set))
}

fn non_empty(
    place: &str,
    field: &'static str,
    values: Vec<String>,
) -> Result<Vec<String>, PolicyError> {
    if values.is_empty() {
        Err(invalid(
            place,
            field,
            "an empty list matches nothing; leave the field out to match any",
        ))
    } else {
        Ok(values)
    }
}

fn invalid(
    place: impl Into<String>,
    field: &'static str,
    problem: impl Into<String>,
) -> PolicyError {
    PolicyError::Invalid {
        place: place.into(),
        field,
        problem: problem.into(),
    }
}

/// True for a non-empty code slug made of `[a-z0-9-]`, as the verdict protocol requires.
pub fn is_slug(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// True for text that fits one git status line: no control characters, at most
/// [`MAX_REASON_CHARS`] characters.
fn is_one_line(text: &str) -> bool {
    text.chars().count() <= MAX_REASON_CHARS && !text.chars().any(char::is_control)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    rules: Vec<RawRule>,
    default: Option<RawAction>,
    secrets: Option<RawSecrets>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecrets {
    approvers: Option<String>,
    code: Option<String>,
    reason: Option<String>,
    approvals: Option<u32>,
}

impl RawSecrets {
    fn compile(self) -> Result<SecretsPolicy, PolicyError> {
        let place = "secrets";
        let defaults = SecretsPolicy::default();
        let approvers = match self.approvers.as_deref().map(str::trim) {
            None => defaults.approvers,
            Some("") => return Err(invalid(place, "approvers", "must name a group")),
            Some(group) => group.to_owned(),
        };
        let code = match &self.code {
            None => defaults.code,
            Some(code) => {
                check_slug(place, code)?;
                format!("gitgate:hold:{code}")
            }
        };
        let reason = match self.reason {
            None => defaults.reason,
            Some(reason) if is_one_line(&reason) && !reason.trim().is_empty() => reason,
            Some(reason) => {
                let problem =
                    format!("must be one line of 1 to {MAX_REASON_CHARS} characters: {reason:?}");
                return Err(invalid(place, "reason", problem));
            }
        };
        let approvals = check_approvals(place, ActionKind::Hold, self.approvals)?;
        Ok(SecretsPolicy {
            code,
            approvers,
            reason,
            approvals,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(rename = "match", default)]
    matches: RawMatch,
    // The action fields are spelled out rather than flattened: serde cannot combine
    // `flatten` with `deny_unknown_fields`.
    action: ActionKind,
    code: Option<String>,
    reason: Option<String>,
    approvers: Option<String>,
    /// How many distinct approvers a hold needs.
    approvals: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    repositories: Option<OneOrMany>,
    refs: Option<OneOrMany>,
    operations: Option<OneOrMany>,
    subjects: Option<OneOrMany>,
    groups: Option<OneOrMany>,
    agent: Option<bool>,
    acting_for: Option<OneOrMany>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    action: ActionKind,
    code: Option<String>,
    reason: Option<String>,
    approvers: Option<String>,
    approvals: Option<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ActionKind {
    Allow,
    Deny,
    Hold,
}

impl RawAction {
    fn compile(self, place: &str, rule: Option<&str>) -> Result<Action, PolicyError> {
        let described =
            rule.map_or_else(|| "the default action".to_owned(), |r| format!("rule {r}"));
        if let Some(reason) = &self.reason
            && !is_one_line(reason)
        {
            let problem =
                format!("must be one line of at most {MAX_REASON_CHARS} characters: {reason:?}");
            return Err(invalid(place, "reason", problem));
        }
        match self.action {
            ActionKind::Allow => {
                if self.approvers.is_some() {
                    return Err(invalid(
                        place,
                        "approvers",
                        "only a hold rule has approvers",
                    ));
                }
                if let Some(code) = &self.code {
                    check_slug(place, code)?;
                }
                Ok(Action::Allow)
            }
            ActionKind::Deny => {
                if self.approvers.is_some() {
                    return Err(invalid(
                        place,
                        "approvers",
                        "only a hold rule has approvers",
                    ));
                }
                let slug = self.required_slug(place)?;
                let reason = self
                    .reason
                    .unwrap_or_else(|| format!("denied by {described}"));
                Ok(Action::Deny {
                    code: format!("gitgate:deny:{slug}"),
                    reason,
                })
            }
            ActionKind::Hold => {
                let slug = self.required_slug(place)?;
                let approvers = match self.approvers.as_deref().map(str::trim) {
                    Some(group) if !group.is_empty() => group.to_owned(),
                    _ => {
                        let problem = "a hold needs the group whose members may approve";
                        return Err(invalid(place, "approvers", problem));
                    }
                };
                let reason = self.reason.unwrap_or_else(|| {
                    format!("held by {described} for approval by group {approvers}")
                });
                Ok(Action::Hold {
                    code: format!("gitgate:hold:{slug}"),
                    approvers,
                    reason,
                })
            }
        }
    }

    fn required_slug(&self, place: &str) -> Result<String, PolicyError> {
        let code = self.code.as_deref().ok_or_else(|| {
            invalid(
                place,
                "code",
                "a deny or hold needs a code slug such as protected-ref",
            )
        })?;
        check_slug(place, code)?;
        Ok(code.to_owned())
    }
}

/// `approvals` is for holds only, from 1 to [`MAX_APPROVALS`]; absent means 1.
fn check_approvals(
    place: &str,
    action: ActionKind,
    approvals: Option<u32>,
) -> Result<u32, PolicyError> {
    match (action, approvals) {
        (_, None) => Ok(1),
        (ActionKind::Hold, Some(n)) if (1..=MAX_APPROVALS).contains(&n) => Ok(n),
        (ActionKind::Hold, Some(_)) => Err(invalid(
            place,
            "approvals",
            format!("must be from 1 to {MAX_APPROVALS}"),
        )),
        (_, Some(_)) => Err(invalid(
            place,
            "approvals",
            "only a hold rule has approvals",
        )),
    }
}

fn check_slug(place: &str, code: &str) -> Result<(), PolicyError> {
    if is_slug(code) {
        Ok(())
    } else {
        let problem = format!("{code:?} is not a slug: use lower-case letters, digits and '-'");
        Err(invalid(place, "code", problem))
    }
}

/// A YAML value that is one string or a list of strings.
#[derive(Debug, Default)]
struct OneOrMany(Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![value.to_owned()]))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<String>()? {
                    values.push(value);
                }
                Ok(OneOrMany(values))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}
