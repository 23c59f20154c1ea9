//! What the allowlist lets through: vendor examples, placeholders, templates, hashes, UUIDs,
//! and what configuration adds.

mod support;

use gitgate_scan::{RuleSet, ScanConfig, scan_bytes};
use support::fakes::{self, Rng};
use support::ids;

fn found(text: &str) -> Vec<String> {
    ids(&scan_bytes(&RuleSet::builtin().unwrap(), text.as_bytes()))
}

#[test]
fn documented_aws_example_keys_are_not_reported() {
    let text = "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n\
                aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n";
    assert!(found(text).is_empty(), "{:?}", found(text));
}

#[test]
fn the_jwt_io_example_token_is_not_reported() {
    let text = "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c\n";
    assert!(found(text).is_empty(), "{:?}", found(text));
}

#[test]
fn stripe_documentation_test_keys_are_not_reported() {
    assert!(found("Stripe.api_key = 'sk_test_4eC39HqLyjWDarjtT1zdp7dc'\n").is_empty());
}

#[test]
fn placeholders_are_not_reported() {
    for text in [
        "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
        "password: changeme\n",
        "API_KEY=<your-api-key>\n",
        "token: \"****************\"\n",
        "db_password = \"dummy-password-1\"\n",
        "SECRET_KEY=your-secret-key-here\n",
        "password = \"test1234\"\n",
        "client_secret: \"REPLACE_ME_WITH_SECRET\"\n",
        "postgres://postgres:postgres@localhost:5432/app\n",
        "https://user:password@git.acme.internal/repo.git\n",
        "SLACK_BOT_TOKEN=xoxb-0000000000-0000000000-XXXXXXXXXXXXXXXXXXXXXXXX\n",
    ] {
        assert!(found(text).is_empty(), "{text}: {:?}", found(text));
    }
}

#[test]
fn templated_and_environment_values_are_not_reported() {
    for text in [
        "password: ${DB_PASSWORD}\n",
        "token = os.environ[\"TOKEN\"]\n",
        "const apiKey = process.env.API_KEY;\n",
        "\"password\": \"{{ .Values.db.password }}\"\n",
        "password = \"%(db_password)s\"\n",
        "String secret = System.getenv(\"APP_SECRET\");\n",
        "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app\n",
        "export API_TOKEN=$CI_JOB_TOKEN\n",
        "Authorization: Bearer ${ACCESS_TOKEN}\n",
        "secret: \"{{ secrets.DEPLOY_KEY }}\"\n",
    ] {
        assert!(found(text).is_empty(), "{text}: {:?}", found(text));
    }
}

#[test]
fn hashes_uuids_and_object_ids_are_not_reported() {
    for text in [
        "commit_token = \"da39a3ee5e6b4b0d3255bfef95601890afd80709\"\n",
        "api_key_sha256: \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\n",
        "request_token: 123e4567-e89b-12d3-a456-426614174000\n",
        "secret_md5 = \"d41d8cd98f00b204e9800998ecf8427e\"\n",
    ] {
        assert!(found(text).is_empty(), "{text}: {:?}", found(text));
    }
}

#[test]
fn code_references_are_not_reported_as_generic_secrets() {
    for text in [
        "password = self.password\n",
        "token: Token,\n",
        "let token = tokens.next()?;\n",
        "secret_key = settings.SECRET_KEY\n",
        "const TOKEN_KEY = \"auth_token_storage\";\n",
        "token_url = \"https://oauth2.googleapis.com/token\"\n",
        "password: Option<String>,\n",
    ] {
        assert!(found(text).is_empty(), "{text}: {:?}", found(text));
    }
}

#[test]
fn a_heroku_uuid_key_is_reported_although_uuids_are_allowlisted() {
    let text = "HEROKU_API_KEY=123e4567-e89b-12d3-a456-426614174000\n";
    assert_eq!(found(text), ["heroku-api-key"]);
}

#[test]
fn a_configured_allowlist_regex_drops_matching_values() {
    let (token, _) = fakes::token("gitlab-pat", &mut Rng::new(3)).unwrap();
    let text = format!("{token}\n");
    let config: ScanConfig =
        serde_norway::from_str(&format!("allowlist:\n  regexes: ['^{}$']\n", &token)).unwrap();
    let rules = RuleSet::compile(&config).unwrap();
    assert!(scan_bytes(&rules, text.as_bytes()).is_empty());
}

#[test]
fn a_configured_fingerprint_drops_that_secret_and_no_other() {
    let mut rng = Rng::new(4);
    let (a, _) = fakes::token("groq-api-key", &mut rng).unwrap();
    let (b, _) = fakes::token("groq-api-key", &mut rng).unwrap();
    let builtin = RuleSet::builtin().unwrap();
    let fingerprint = builtin.fingerprint(a.as_bytes());
    let config: ScanConfig =
        serde_norway::from_str(&format!("allowlist:\n  fingerprints: ['{fingerprint}']\n"))
            .unwrap();
    let rules = RuleSet::compile(&config).unwrap();
    let text = format!("{a}\n{b}\n");
    let findings = scan_bytes(&rules, text.as_bytes());
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].fingerprint, builtin.fingerprint(b.as_bytes()));
}
