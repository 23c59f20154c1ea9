//! The built-in allowlist: documented example values, placeholders, templates, hashes, UUIDs and
//! values that read as code. Each check looks at the secret value alone.

use crate::rule::AllowKinds;

/// Values that vendors publish in their documentation as examples. They are public, appear in
/// countless READMEs and tests, and grant nothing.
pub const DOCUMENTED_EXAMPLES: &[&str] = &[
    // AWS IAM user guide.
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AKIAI44QH8DHBEXAMPLE",
    "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
    "ASIAIOSFODNN7EXAMPLE",
    // Stripe API reference test keys.
    "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    "sk_test_BQokikJOvBiI2HlWgH4olfQ2",
    // The jwt.io debugger's default token.
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
];

/// Substrings that mark a value as a stand-in, compared ASCII case-insensitively.
const PLACEHOLDER_MARKS: &[&str] = &[
    "example",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "changethis",
    "your-",
    "your_",
    "yourkey",
    "yourtoken",
    "yoursecret",
    "yourpassword",
    "redacted",
    "dummy",
    "sample",
    "replaceme",
    "replace_me",
    "replace-me",
    "insert_",
    "insert-",
    "notarealkey",
    "not_a_real",
    "not-a-real",
    "****",
    "...",
    "<",
    ">",
];

/// Words a value carries when it names itself ("my-secret-password", "super_secret_1"): a
/// demonstration, not a credential. Checked only for rules keyed on names and URLs, since token
/// formats may carry them (`AGE-SECRET-KEY-1...`).
const SELF_NAMING_MARKS: &[&str] = &["password", "passwd", "secret"];

/// Whole values (after stripping trailing digits and punctuation) that are stand-ins.
const PLACEHOLDER_WORDS: &[&str] = &[
    "test",
    "testing",
    "tests",
    "fake",
    "mock",
    "foo",
    "bar",
    "baz",
    "foobar",
    "abc",
    "abcdef",
    "admin",
    "root",
    "pass",
    "password",
    "passwd",
    "secret",
    "token",
    "key",
    "apikey",
    "value",
    "none",
    "null",
    "nil",
    "undefined",
    "empty",
    "default",
    "demo",
    "guest",
    "user",
    "username",
    "postgres",
    "mysql",
    "qwerty",
    "letmein",
    "hunter",
    "todo",
    "tbd",
    "xyz",
    "opensesame",
];

/// Substrings that mark a templated value, filled in at deploy or run time.
const TEMPLATE_MARKS: &[&str] = &[
    "${",
    "{{",
    "}}",
    "%(",
    "<%",
    "#{",
    "process.env",
    "import.meta.env",
    "os.environ",
    "os.getenv",
    "getenv(",
    "system.getenv",
    "environment.getenvironmentvariable",
    "env[",
    "env(",
    "env.",
    "secrets.",
    "vault(",
    "lookup(",
];

/// The hex digest lengths that are dropped as hashes: MD5, SHA-1 (and git's object ids),
/// SHA-256 (and SHA-256 object ids), SHA-512.
const HASH_HEX_LENS: &[usize] = &[32, 40, 64, 128];

/// Whether one of the checks in `kinds` drops `value`.
pub fn is_allowed(kinds: AllowKinds, value: &[u8]) -> bool {
    (kinds.contains(AllowKinds::EXAMPLES) && is_documented_example(value))
        || (kinds.contains(AllowKinds::PLACEHOLDERS) && is_placeholder(value))
        || (kinds.contains(AllowKinds::TEMPLATES) && is_template(value))
        || (kinds.contains(AllowKinds::HASHES) && is_hash(value))
        || (kinds.contains(AllowKinds::UUIDS) && is_uuid(value))
        || (kinds.contains(AllowKinds::CODE_LIKE) && is_code_like(value))
        || (kinds.contains(AllowKinds::SELF_NAMED) && is_self_named(value))
}

/// Whether `value` is one of [`DOCUMENTED_EXAMPLES`].
pub fn is_documented_example(value: &[u8]) -> bool {
    DOCUMENTED_EXAMPLES.iter().any(|e| e.as_bytes() == value)
}

/// Whether `value` is a placeholder: it carries a placeholder mark, is a run of one repeated
/// byte, holds a run of four `x`, or is a placeholder word followed by digits or punctuation.
pub fn is_placeholder(value: &[u8]) -> bool {
    if PLACEHOLDER_MARKS
        .iter()
        .any(|m| contains_ignore_case(value, m.as_bytes()))
    {
        return true;
    }
    if value.len() >= 4 && value.iter().all(|&b| b == value[0]) {
        return true;
    }
    // Four rather than three: a random 36-character base62 body holds "xxx" about once in
    // 6,600 tokens and "xxxx" once in 400,000.
    if contains_ignore_case(value, b"xxxx") {
        return true;
    }
    let word_end = value
        .iter()
        .rposition(|b| b.is_ascii_alphabetic())
        .map_or(0, |i| i + 1);
    let (word, tail) = value.split_at(word_end);
    let word_is_stand_in = PLACEHOLDER_WORDS
        .iter()
        .any(|w| w.as_bytes().eq_ignore_ascii_case(word));
    let tail_is_filler = tail
        .iter()
        .all(|b| b.is_ascii_digit() || b.is_ascii_punctuation());
    word_is_stand_in && tail_is_filler
}

/// Whether `value` spells out that it is a password or secret.
pub fn is_self_named(value: &[u8]) -> bool {
    SELF_NAMING_MARKS
        .iter()
        .any(|m| contains_ignore_case(value, m.as_bytes()))
}

/// Whether `value` is a template or a reference to the environment rather than a value.
pub fn is_template(value: &[u8]) -> bool {
    if let [b'$', next, ..] = value
        && (next.is_ascii_alphabetic() || matches!(next, b'_' | b'{' | b'('))
    {
        return true;
    }
    TEMPLATE_MARKS
        .iter()
        .any(|m| contains_ignore_case(value, m.as_bytes()))
}

/// Whether `value` is nothing but hex digits of a digest's length.
pub fn is_hash(value: &[u8]) -> bool {
    HASH_HEX_LENS.contains(&value.len()) && value.iter().all(u8::is_ascii_hexdigit)
}

/// Whether `value` is a UUID in its 8-4-4-4-12 text form (RFC 9562 section 4).
pub fn is_uuid(value: &[u8]) -> bool {
    value.len() == 36
        && value.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Whether `value` reads as code or a reference rather than a secret: a URL, a dotted or
/// slashed path of identifiers, or a single-case word with no digit (`TOKEN_NAME`,
/// `self.password`, `config/secrets`).
pub fn is_code_like(value: &[u8]) -> bool {
    if find_bytes(value, b"://").is_some() || is_snake_identifier(value) {
        return true;
    }
    let letters_only = value
        .iter()
        .all(|b| b.is_ascii_alphabetic() || matches!(b, b'_' | b'.' | b'/' | b'-' | b':'));
    if !letters_only {
        return false;
    }
    let has_separator = value.iter().any(|b| matches!(b, b'.' | b'/' | b':'));
    let single_case =
        !value.iter().any(u8::is_ascii_uppercase) || !value.iter().any(u8::is_ascii_lowercase);
    let camel_identifier = value.iter().all(|b| b.is_ascii_alphabetic() || *b == b'_');
    has_separator || single_case || camel_identifier
}

/// Whether `value` is a snake_case or SCREAMING_SNAKE_CASE identifier with digits, such as
/// `caching_sha2_password` or `AES_256_KEY`: words of one case joined by `_`.
fn is_snake_identifier(value: &[u8]) -> bool {
    let starts_with_letter = value.first().is_some_and(u8::is_ascii_alphabetic);
    let one_case =
        !value.iter().any(u8::is_ascii_uppercase) || !value.iter().any(u8::is_ascii_lowercase);
    let words = value
        .split(|&b| b == b'_')
        .filter(|w| !w.is_empty())
        .count();
    starts_with_letter
        && one_case
        && words >= 2
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack.len() >= needle.len()
        && haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    crate::validate::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_examples_are_dropped() {
        assert!(is_documented_example(b"AKIAIOSFODNN7EXAMPLE"));
        assert!(is_placeholder(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"));
    }

    #[test]
    fn placeholder_words_with_digits_are_dropped_but_real_looking_values_are_not() {
        assert!(is_placeholder(b"test1234"));
        assert!(is_placeholder(b"password123!"));
        assert!(is_placeholder(b"<your-token>"));
        assert!(is_placeholder(b"ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
        assert!(!is_placeholder(b"sk_test_51Hb3kLm9QxYz7Tw2Rv8Np4Ds"));
        assert!(!is_placeholder(b"Tr0ub4dor&3"));
    }

    #[test]
    fn templates_and_environment_lookups_are_dropped() {
        for v in [
            &b"${DB_PASSWORD}"[..],
            b"{{ .Values.token }}",
            b"%(password)s",
            b"process.env.API_KEY",
            b"os.environ['TOKEN']",
            b"System.getenv(\"X\")",
            b"$SECRET",
        ] {
            assert!(is_template(v), "{}", String::from_utf8_lossy(v));
        }
        assert!(!is_template(b"p4$$w0rd-and-more"));
    }

    #[test]
    fn digests_and_uuids_are_recognised_by_shape() {
        assert!(is_hash(b"d41d8cd98f00b204e9800998ecf8427e"));
        assert!(is_hash(b"da39a3ee5e6b4b0d3255bfef95601890afd80709"));
        assert!(!is_hash(b"da39a3ee5e6b4b0d3255bfef95601890afd8070"));
        assert!(is_uuid(b"123e4567-e89b-12d3-a456-426614174000"));
        assert!(!is_uuid(b"123e4567e89b12d3a456426614174000xxxx"));
    }

    #[test]
    fn code_references_are_code_like_and_passwords_are_not() {
        assert!(is_code_like(b"self.password"));
        assert!(is_code_like(b"TOKEN_NAME"));
        assert!(is_code_like(b"authTokenStorage"));
        assert!(is_code_like(b"https://oauth2.example.org/token"));
        assert!(is_code_like(b"caching_sha2_password"));
        assert!(is_code_like(b"AES_256_GCM"));
        assert!(!is_code_like(b"Summer2023!"));
        assert!(!is_code_like(b"q8Jv2LmN0pR4sT6u"));
    }
}
