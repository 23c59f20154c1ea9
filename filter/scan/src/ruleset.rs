//! Compiling configuration into a [`RuleSet`]: regexes, the keyword automaton, the allowlist
//! and the fingerprint key, built once and shared by every scanner.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex_automata::meta;
use regex_syntax::hir::{Class, Hir, HirKind, Look};

use crate::config::{ConfigError, ScanConfig};
use crate::fingerprint::{
    DEFAULT_FINGERPRINT_KEY, Fingerprint, Fingerprinter, MIN_FINGERPRINT_KEY_LEN,
};
use crate::rule::{AllowKinds, Family, Validation};
use crate::rules::BUILTIN_RULES;

/// The shortest keyword: one-byte keywords would send nearly every byte to a regex.
pub const MIN_KEYWORD_LEN: usize = 2;

/// The longest keyword. The keyword pass re-reads this many bytes minus one at each block
/// boundary, so it bounds that overlap.
pub const MAX_KEYWORD_LEN: usize = 64;

/// The largest `max_len` or `max_prefix` a rule may have. The streaming carry is at most the sum
/// of the two plus a keyword, so this bounds a scanner's memory: 16 KiB covers the longest
/// built-in rule (a PGP private key block).
pub const MAX_RULE_LEN: usize = 16 * 1024;

/// `max_len` of a custom rule that sets none.
pub const DEFAULT_CUSTOM_MAX_LEN: usize = 256;

/// Lazy-DFA cache capacity of each rule's regex. A rule's regex only runs on windows of at most
/// `max_prefix + max_len` bytes, so this is an upper bound that is seldom reached; the library
/// default is kept, and memory grows only with the states a rule really builds.
pub const RULE_CACHE_CAPACITY: usize = 2 * 1024 * 1024;

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub(crate) id: Arc<str>,
    pub(crate) family: Family,
    pub(crate) description: String,
    pub(crate) pattern: String,
    pub(crate) keywords: Vec<String>,
    pub(crate) keywords_case_sensitive: bool,
    pub(crate) regex: meta::Regex,
    /// Always a group of `regex`: checked at compile time.
    pub(crate) secret_group: usize,
    pub(crate) entropy: Option<f64>,
    pub(crate) validation: Option<Validation>,
    pub(crate) max_prefix: usize,
    /// Bytes before a match its validation reads.
    pub(crate) lookbehind: usize,
    /// At least 1 and at most [`MAX_RULE_LEN`].
    pub(crate) max_len: usize,
    pub(crate) generic: bool,
    pub(crate) allow: AllowKinds,
}

impl Rule {
    /// The rule's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The rule's family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The one-sentence description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The regex source as configured.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The prefilter keywords as configured.
    pub fn keywords(&self) -> &[String] {
        &self.keywords
    }

    /// Whether the rule yields to specific rules.
    pub fn is_generic(&self) -> bool {
        self.generic
    }

    /// The longest match, in bytes.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

/// One rule a keyword leads to.
#[derive(Debug)]
pub(crate) struct KeywordTarget {
    pub(crate) rule: u32,
    /// The bytes the hit must equal when the rule's keywords are case-sensitive.
    pub(crate) exact: Option<Box<[u8]>>,
}

/// Every rule compiled, with the keyword automaton that prefilters them and the allowlist.
///
/// Compile it once per VM (or process) with [`RuleSet::compile`] and share it among scanners:
/// the regexes keep their lazy-DFA caches for the life of the set, and a warm cache runs about
/// half again as fast as a cold one.
#[derive(Debug)]
pub struct RuleSet {
    pub(crate) rules: Vec<Rule>,
    /// ASCII case-insensitive, overlapping, DFA kind: with a hundred-odd keywords the automatic
    /// choice is a noncontiguous NFA about three times slower.
    pub(crate) keywords: AhoCorasick,
    /// Indexed by the automaton's pattern id.
    pub(crate) keyword_targets: Vec<Vec<KeywordTarget>>,
    pub(crate) max_keyword_len: usize,
    /// The largest `max_prefix`: how far before a keyword any match may start.
    pub(crate) max_prefix: usize,
    /// The largest `max_prefix + lookbehind`: how far before a keyword any rule reads.
    pub(crate) max_reach_back: usize,
    pub(crate) max_window: usize,
    pub(crate) allow_regexes: Vec<meta::Regex>,
    pub(crate) allow_fingerprints: BTreeSet<Fingerprint>,
    pub(crate) fingerprinter: Fingerprinter,
}

/// A rule gathered from the built-in table, an override or configuration, before compiling.
struct Draft {
    /// Where errors point: `builtin.<id>`, `overrides.<id>` or `rules[<n>]`.
    field: String,
    id: String,
    family: Family,
    description: String,
    keywords: Vec<String>,
    case_sensitive: bool,
    pattern: String,
    pattern_field: String,
    secret_group: Option<usize>,
    entropy: Option<f64>,
    validation: Option<Validation>,
    max_prefix: Option<usize>,
    max_len: usize,
    generic: bool,
    allow: AllowKinds,
}

impl RuleSet {
    /// The built-in rules with no configuration.
    pub fn builtin() -> Result<RuleSet, ConfigError> {
        RuleSet::compile(&ScanConfig::default())
    }

    /// Compiles the built-in rules as `config` changes them, plus its custom rules.
    pub fn compile(config: &ScanConfig) -> Result<RuleSet, ConfigError> {
        let key = match &config.fingerprint_key {
            Some(key) if key.len() < MIN_FINGERPRINT_KEY_LEN => {
                return Err(ConfigError::FingerprintKeyTooShort {
                    len: key.len(),
                    min: MIN_FINGERPRINT_KEY_LEN,
                });
            }
            Some(key) => key.as_bytes(),
            None => DEFAULT_FINGERPRINT_KEY.as_bytes(),
        };
        let drafts = drafts(config)?;

        let mut rules = Vec::with_capacity(drafts.len());
        let mut keyword_index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut keyword_bytes: Vec<Vec<u8>> = Vec::new();
        let mut keyword_targets: Vec<Vec<KeywordTarget>> = Vec::new();
        for (index, draft) in drafts.into_iter().enumerate() {
            let rule_index = u32::try_from(index).map_err(|_| ConfigError::Keywords {
                message: "more rules than the engine indexes".to_owned(),
            })?;
            let rule = compile_draft(draft)?;
            for keyword in &rule.keywords {
                let folded = keyword.as_bytes().to_ascii_lowercase();
                let slot = *keyword_index.entry(folded.clone()).or_insert_with(|| {
                    keyword_bytes.push(folded);
                    keyword_targets.push(Vec::new());
                    keyword_targets.len() - 1
                });
                let exact = rule
                    .keywords_case_sensitive
                    .then(|| keyword.as_bytes().into());
                keyword_targets[slot].push(KeywordTarget {
                    rule: rule_index,
                    exact,
                });
            }
            rules.push(rule);
        }

        let keywords = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::DFA))
            .match_kind(MatchKind::Standard)
            .ascii_case_insensitive(true)
            .build(&keyword_bytes)
            .map_err(|e| ConfigError::Keywords {
                message: e.to_string(),
            })?;
        let max_keyword_len = keyword_bytes.iter().map(Vec::len).max().unwrap_or(0);
        let max_prefix = rules.iter().map(|r| r.max_prefix).max().unwrap_or(0);
        let max_reach_back = rules
            .iter()
            .map(|r| r.max_prefix + r.lookbehind)
            .max()
            .unwrap_or(0);
        let max_window = rules
            .iter()
            .map(|r| r.max_prefix + r.lookbehind + r.max_len)
            .max()
            .unwrap_or(0);

        let mut allow_regexes = Vec::with_capacity(config.allowlist.regexes.len());
        for (i, source) in config.allowlist.regexes.iter().enumerate() {
            let field = format!("allowlist.regexes[{i}]");
            let regex = compile_ascii(source, RULE_CACHE_CAPACITY).map_err(|e| match e {
                PatternError::Unicode => ConfigError::InvalidAllowlistRegex {
                    field,
                    message: "uses a Unicode class or boundary; use ASCII forms".to_owned(),
                },
                PatternError::Syntax(message) => {
                    ConfigError::InvalidAllowlistRegex { field, message }
                }
            })?;
            allow_regexes.push(regex);
        }
        let mut allow_fingerprints = BTreeSet::new();
        for (i, text) in config.allowlist.fingerprints.iter().enumerate() {
            let fingerprint =
                Fingerprint::from_hex(text).ok_or_else(|| ConfigError::InvalidFingerprint {
                    field: format!("allowlist.fingerprints[{i}]"),
                    value: text.clone(),
                })?;
            allow_fingerprints.insert(fingerprint);
        }

        Ok(RuleSet {
            rules,
            keywords,
            keyword_targets,
            max_keyword_len,
            max_prefix,
            max_reach_back,
            max_window,
            allow_regexes,
            allow_fingerprints,
            fingerprinter: Fingerprinter::new(key),
        })
    }

    /// The compiled rules, in reporting order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule with `id`, if it is in the set.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| &*r.id == id)
    }

    /// The fingerprint this set gives `value`, for writing allowlists.
    pub fn fingerprint(&self, value: &[u8]) -> Fingerprint {
        self.fingerprinter.fingerprint(value)
    }

    /// The most bytes a scanner keeps between chunks: the longest rule window plus a keyword.
    pub fn carry_len(&self) -> usize {
        self.max_window + self.max_keyword_len + 1
    }
}

/// Gathers built-in drafts (less disabled, with overrides) and custom drafts, checking ids.
fn drafts(config: &ScanConfig) -> Result<Vec<Draft>, ConfigError> {
    let builtin_ids: BTreeMap<&str, usize> = BUILTIN_RULES
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id, i))
        .collect();
    let mut disabled = BTreeSet::new();
    for (i, id) in config.disable.iter().enumerate() {
        if !builtin_ids.contains_key(id.as_str()) {
            return Err(ConfigError::UnknownRule {
                field: format!("disable[{i}]"),
                rule: id.clone(),
            });
        }
        disabled.insert(id.as_str());
    }
    for id in config.overrides.keys() {
        if !builtin_ids.contains_key(id.as_str()) {
            return Err(ConfigError::UnknownRule {
                field: format!("overrides.{id}"),
                rule: id.clone(),
            });
        }
    }

    let mut out = Vec::with_capacity(BUILTIN_RULES.len() + config.rules.len());
    for spec in BUILTIN_RULES {
        if disabled.contains(spec.id) {
            continue;
        }
        let mut draft = Draft {
            field: format!("builtin.{}", spec.id),
            id: spec.id.to_owned(),
            family: spec.family,
            description: spec.description.to_owned(),
            keywords: spec.keywords.iter().map(|k| (*k).to_owned()).collect(),
            case_sensitive: spec.keywords_case_sensitive,
            pattern: spec.pattern.to_owned(),
            pattern_field: format!("builtin.{}.pattern", spec.id),
            secret_group: Some(spec.secret_group),
            entropy: spec.entropy,
            validation: spec.validation,
            max_prefix: Some(spec.max_prefix),
            max_len: spec.max_len,
            generic: spec.generic,
            allow: spec.allow,
        };
        if let Some(o) = config.overrides.get(spec.id) {
            draft.field = format!("overrides.{}", spec.id);
            if let Some(pattern) = &o.pattern {
                draft.pattern = pattern.clone();
                draft.pattern_field = format!("overrides.{}.pattern", spec.id);
                // A new pattern may have a different group layout.
                draft.secret_group = None;
            }
            if let Some(keywords) = &o.keywords {
                draft.keywords = keywords.clone();
            }
            if let Some(entropy) = o.entropy {
                // Zero turns the floor off; out-of-range values are reported below.
                draft.entropy = (entropy != 0.0).then_some(entropy);
            }
            if let Some(group) = o.secret_group {
                draft.secret_group = Some(group);
            }
            if let Some(max_len) = o.max_len {
                draft.max_len = max_len;
            }
            if let Some(max_prefix) = o.max_prefix {
                draft.max_prefix = Some(max_prefix);
            }
        }
        out.push(draft);
    }

    let mut custom_ids = BTreeSet::new();
    for (i, rule) in config.rules.iter().enumerate() {
        let field = format!("rules[{i}]");
        if !valid_rule_id(&rule.id) {
            return Err(ConfigError::InvalidRuleId {
                field: format!("{field}.id"),
                rule: rule.id.clone(),
            });
        }
        if builtin_ids.contains_key(rule.id.as_str()) || !custom_ids.insert(rule.id.as_str()) {
            return Err(ConfigError::DuplicateRule {
                field: format!("{field}.id"),
                rule: rule.id.clone(),
            });
        }
        out.push(Draft {
            pattern_field: format!("{field}.pattern"),
            id: rule.id.clone(),
            family: rule.family.unwrap_or(Family::Custom),
            description: rule.description.clone().unwrap_or_else(|| rule.id.clone()),
            keywords: rule.keywords.clone(),
            case_sensitive: rule.keywords_case_sensitive,
            pattern: rule.pattern.clone(),
            secret_group: rule.secret_group,
            entropy: rule.entropy,
            validation: rule.validation,
            max_prefix: rule.max_prefix,
            max_len: rule.max_len.unwrap_or(DEFAULT_CUSTOM_MAX_LEN),
            generic: rule.generic,
            allow: if rule.generic {
                AllowKinds::GENERIC
            } else {
                AllowKinds::STANDARD
            },
            field,
        });
    }
    Ok(out)
}

fn valid_rule_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn compile_draft(draft: Draft) -> Result<Rule, ConfigError> {
    let Draft { field, id, .. } = &draft;
    if draft.keywords.is_empty() {
        return Err(ConfigError::NoKeywords {
            field: format!("{field}.keywords"),
            rule: id.clone(),
        });
    }
    for (i, keyword) in draft.keywords.iter().enumerate() {
        if !(MIN_KEYWORD_LEN..=MAX_KEYWORD_LEN).contains(&keyword.len()) {
            return Err(ConfigError::KeywordLength {
                field: format!("{field}.keywords[{i}]"),
                rule: id.clone(),
                keyword: keyword.clone(),
            });
        }
    }
    if !(1..=MAX_RULE_LEN).contains(&draft.max_len) {
        return Err(ConfigError::LengthOutOfRange {
            field: format!("{field}.max_len"),
            rule: id.clone(),
            value: draft.max_len,
            max: MAX_RULE_LEN,
        });
    }
    let max_prefix = draft.max_prefix.unwrap_or(draft.max_len);
    if max_prefix > MAX_RULE_LEN {
        return Err(ConfigError::LengthOutOfRange {
            field: format!("{field}.max_prefix"),
            rule: id.clone(),
            value: max_prefix,
            max: MAX_RULE_LEN,
        });
    }
    if let Some(value) = draft.entropy
        && !(0.0..=8.0).contains(&value)
    {
        return Err(ConfigError::InvalidEntropy {
            field: format!("{field}.entropy"),
            rule: id.clone(),
            value,
        });
    }
    let regex = compile_ascii(&draft.pattern, RULE_CACHE_CAPACITY).map_err(|e| match e {
        PatternError::Unicode => ConfigError::UnicodePattern {
            field: draft.pattern_field.clone(),
            rule: id.clone(),
        },
        PatternError::Syntax(message) => ConfigError::InvalidPattern {
            field: draft.pattern_field.clone(),
            rule: id.clone(),
            message,
        },
    })?;
    let groups = regex
        .group_info()
        .group_len(regex_automata::PatternID::ZERO);
    let secret_group = draft.secret_group.unwrap_or(if groups > 1 { 1 } else { 0 });
    if secret_group >= groups {
        return Err(ConfigError::SecretGroupOutOfRange {
            field: format!("{field}.secret_group"),
            rule: id.clone(),
            group: secret_group,
            groups: groups.saturating_sub(1),
        });
    }
    Ok(Rule {
        id: Arc::from(draft.id.as_str()),
        family: draft.family,
        description: draft.description,
        pattern: draft.pattern,
        keywords: draft.keywords,
        keywords_case_sensitive: draft.case_sensitive,
        regex,
        secret_group,
        entropy: draft.entropy,
        validation: draft.validation,
        max_prefix,
        lookbehind: draft.validation.map_or(0, |v| v.lookbehind()),
        max_len: draft.max_len,
        generic: draft.generic,
        allow: draft.allow,
    })
}

/// Why a pattern did not compile.
#[derive(Debug)]
pub(crate) enum PatternError {
    Syntax(String),
    Unicode,
}

/// Parses `pattern` with Unicode off, rejects any Unicode class or boundary left in through
/// `(?u)`, and builds a meta regex over bytes.
pub(crate) fn compile_ascii(pattern: &str, cache: usize) -> Result<meta::Regex, PatternError> {
    let hir = parse_ascii(pattern)?;
    meta::Regex::builder()
        .configure(
            meta::Config::new()
                .utf8_empty(false)
                .hybrid_cache_capacity(cache),
        )
        .build_from_hir(&hir)
        .map_err(|e| PatternError::Syntax(e.to_string()))
}

/// Parses `pattern` as the engine does and checks that it is ASCII-only.
pub(crate) fn parse_ascii(pattern: &str) -> Result<Hir, PatternError> {
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .map_err(|e| PatternError::Syntax(e.to_string()))?;
    if has_unicode(&hir) {
        Err(PatternError::Unicode)
    } else {
        Ok(hir)
    }
}

/// Whether `hir` contains a Unicode word boundary or a Unicode class reaching past ASCII.
fn has_unicode(hir: &Hir) -> bool {
    let mut stack = vec![hir];
    while let Some(hir) = stack.pop() {
        match hir.kind() {
            HirKind::Look(look) => {
                if matches!(
                    look,
                    Look::WordUnicode
                        | Look::WordUnicodeNegate
                        | Look::WordStartUnicode
                        | Look::WordEndUnicode
                        | Look::WordStartHalfUnicode
                        | Look::WordEndHalfUnicode
                ) {
                    return true;
                }
            }
            HirKind::Class(Class::Unicode(class)) => {
                if class.ranges().iter().any(|r| r.end() > '\x7f') {
                    return true;
                }
            }
            HirKind::Literal(_) | HirKind::Class(Class::Bytes(_)) | HirKind::Empty => {}
            HirKind::Repetition(rep) => stack.push(&rep.sub),
            HirKind::Capture(cap) => stack.push(&cap.sub),
            HirKind::Concat(subs) | HirKind::Alternation(subs) => stack.extend(subs.iter()),
        }
    }
    false
}

/// Parses every pattern of `rules` the way the engine does, for a baseline that runs them all
/// as one regex.
pub fn parse_rule_patterns(rules: &RuleSet) -> Vec<Hir> {
    rules
        .rules
        .iter()
        .filter_map(|r| parse_ascii(&r.pattern).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unicode_class_smuggled_in_with_the_u_flag_is_rejected() {
        assert!(matches!(
            parse_ascii(r"(?u)\w+"),
            Err(PatternError::Unicode | PatternError::Syntax(_))
        ));
        assert!(parse_ascii(r"(?u:\b)x").is_err());
        assert!(parse_ascii(r"\bx\w+\s").is_ok());
    }
}
