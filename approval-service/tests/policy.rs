//! Policy matching and policy errors.

use gitgate::policy::{Action, Input, Policy};
use gitgate_core::api::{Identity, Operation};

const TABLE_POLICY: &str = r#"
rules:
  - name: bots never delete
    code: agent-delete
    match: { agent: true, operations: delete }
    action: deny
    reason: agents may not delete refs
  - name: infra repos need ops
    code: infra
    match:
      repositories: ["infra/**", "ops.git"]
    action: hold
    approvers: ops
  - name: release managers may tag
    match: { refs: "refs/tags/**", groups: release-managers }
    action: allow
  - name: tags are held
    code: tag
    match: { refs: "refs/tags/**" }
    action: hold
    approvers: release-managers
  - name: work for interns is held
    code: intern-work
    match: { acting_for: "intern-*", refs: "refs/heads/*" }
    action: hold
    approvers: reviewers
  - name: ci may push anything
    match: { subjects: [ci, "ci-*"] }
    action: allow
  - name: one segment only
    code: nested-feature
    match: { refs: "refs/heads/feature/*" }
    action: deny
default:
  action: hold
  code: unlisted
  approvers: reviewers
"#;

struct Case {
    says: &'static str,
    repository: &'static str,
    refname: &'static str,
    operation: Operation,
    subject: &'static str,
    agent: bool,
    acting_for: Option<&'static str>,
    groups: &'static [&'static str],
    rule: Option<&'static str>,
}

const fn case(says: &'static str, refname: &'static str, rule: Option<&'static str>) -> Case {
    Case {
        says,
        repository: "app.git",
        refname,
        operation: Operation::Update,
        subject: "alice",
        agent: false,
        acting_for: None,
        groups: &[],
        rule,
    }
}

#[test]
fn rules_match_in_order_and_the_first_match_wins() {
    let policy = Policy::from_yaml(TABLE_POLICY).expect("the table policy compiles");
    let cases = [
        Case {
            agent: true,
            operation: Operation::Delete,
            ..case(
                "an agent deleting anything is denied first",
                "refs/heads/x",
                Some("bots never delete"),
            )
        },
        Case {
            operation: Operation::Delete,
            ..case(
                "a person deleting goes on to later rules",
                "refs/heads/feature/a",
                Some("one segment only"),
            )
        },
        Case {
            repository: "infra/net/core.git",
            ..case(
                "** crosses directories in repository globs",
                "refs/heads/x",
                Some("infra repos need ops"),
            )
        },
        Case {
            repository: "ops.git",
            ..case(
                "any glob of a list matches",
                "refs/heads/x",
                Some("infra repos need ops"),
            )
        },
        Case {
            repository: "xinfra/a.git",
            ..case("globs are anchored", "refs/heads/x", None)
        },
        Case {
            groups: &["dev", "release-managers"],
            ..case(
                "any of the pusher's groups matches",
                "refs/tags/v1",
                Some("release managers may tag"),
            )
        },
        Case {
            groups: &["dev"],
            ..case(
                "other groups fall through",
                "refs/tags/v1",
                Some("tags are held"),
            )
        },
        Case {
            agent: true,
            acting_for: Some("intern-joe"),
            ..case(
                "acting_for matches the person an agent acts for",
                "refs/heads/x",
                Some("work for interns is held"),
            )
        },
        Case {
            subject: "intern-joe",
            ..case(
                "acting_for never matches a token without one",
                "refs/heads/x",
                None,
            )
        },
        Case {
            subject: "ci-7",
            ..case(
                "subject globs match",
                "refs/heads/x",
                Some("ci may push anything"),
            )
        },
        Case {
            subject: "ci",
            ..case(
                "exact subjects match",
                "refs/heads/x",
                Some("ci may push anything"),
            )
        },
        case(
            "* stays within one segment",
            "refs/heads/feature/a",
            Some("one segment only"),
        ),
        case(
            "the default applies when nothing matches",
            "refs/heads/feature/a/b",
            None,
        ),
    ];
    for case in cases {
        let identity = Identity {
            subject: case.subject.into(),
            agent: case.agent,
            acting_for: case.acting_for.map(str::to_owned),
            groups: case.groups.iter().map(|g| (*g).to_owned()).collect(),
            token_id: None,
            session: None,
        };
        let input = Input {
            repository: case.repository,
            refname: case.refname,
            operation: case.operation,
            identity: &identity,
        };
        let decision = policy.evaluate(&input);
        assert_eq!(decision.rule, case.rule, "{}", case.says);
    }
}

#[test]
fn actions_carry_full_codes_reasons_and_approvers() {
    let policy = Policy::from_yaml(TABLE_POLICY).expect("compiles");
    let identity = Identity {
        subject: "bot".into(),
        agent: true,
        ..Identity::default()
    };
    let input = |refname, operation| Input {
        repository: "app.git",
        refname,
        operation,
        identity: &identity,
    };

    let denied = policy.evaluate(&input("refs/heads/x", Operation::Delete));
    assert_eq!(
        denied.action,
        &Action::Deny {
            code: "gitgate:deny:agent-delete".into(),
            reason: "agents may not delete refs".into()
        }
    );
    let default = policy.evaluate(&input("refs/heads/x", Operation::Update));
    assert_eq!(
        default.action,
        &Action::Hold {
            code: "gitgate:hold:unlisted".into(),
            approvers: "reviewers".into(),
            reason: "held by the default action for approval by group reviewers".into(),
        }
    );
    let nested = policy.evaluate(&input("refs/heads/feature/a", Operation::Update));
    assert_eq!(
        nested.action,
        &Action::Deny {
            code: "gitgate:deny:nested-feature".into(),
            reason: "denied by rule one segment only".into()
        }
    );
}

#[test]
fn the_embedded_default_holds_every_change_of_main_and_allows_the_rest() {
    let policy = Policy::embedded_default().expect("the default compiles");
    let identity = Identity {
        subject: "agent-7".into(),
        agent: true,
        ..Identity::default()
    };
    for operation in [Operation::Create, Operation::Update, Operation::Delete] {
        for repository in ["demo.git", "org/app.git"] {
            let input = Input {
                repository,
                refname: "refs/heads/main",
                operation,
                identity: &identity,
            };
            let decision = policy.evaluate(&input);
            assert_eq!(decision.rule, Some("protect main"));
            assert!(
                matches!(decision.action, Action::Hold { code, approvers, .. }
                    if code == "gitgate:hold:protected-ref" && approvers == "reviewers"),
                "{:?}",
                decision.action
            );
        }
    }
    for refname in [
        "refs/heads/mainline",
        "refs/heads/feature",
        "refs/tags/main",
    ] {
        let input = Input {
            repository: "demo.git",
            refname,
            operation: Operation::Update,
            identity: &identity,
        };
        assert_eq!(policy.evaluate(&input).action, &Action::Allow, "{refname}");
    }
}

#[test]
fn the_example_policy_file_compiles() {
    let text = include_str!("../policy.example.yaml");
    let policy = Policy::from_yaml(text).expect("policy.example.yaml compiles");
    assert!(policy.rule_count() >= 3);
}

#[test]
fn an_empty_policy_allows_everything() {
    let policy = Policy::from_yaml("{}").expect("compiles");
    let identity = Identity {
        subject: "x".into(),
        ..Identity::default()
    };
    let input = Input {
        repository: "a",
        refname: "refs/heads/main",
        operation: Operation::Delete,
        identity: &identity,
    };
    assert_eq!(policy.evaluate(&input).action, &Action::Allow);
}

/// The message for a policy that must not compile.
fn error_of(yaml: &str) -> String {
    match Policy::from_yaml(yaml) {
        Ok(_) => panic!("the policy compiled:\n{yaml}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn policy_errors_name_the_rule_and_the_field() {
    let cases = [
        (
            "rules:\n- {name: main, code: p, action: hold}\n",
            "rule 1 \"main\": field `approvers`: a hold needs the group whose members may approve",
        ),
        (
            "rules:\n- {name: ok, action: allow}\n- {name: bad glob, match: {refs: \"refs/[\"}, \
             action: allow}\n",
            "rule 2 \"bad glob\": field `match.refs`: invalid glob \"refs/[\": \
             unclosed character class; missing ']'",
        ),
        (
            "rules:\n- {name: no code, action: deny}\n",
            "rule 1 \"no code\": field `code`: \
             a deny or hold needs a code slug such as protected-ref",
        ),
        (
            "rules:\n- {name: caps, code: Protected_Ref, action: deny}\n",
            "rule 1 \"caps\": field `code`: \"Protected_Ref\" is not a slug: \
             use lower-case letters, digits and '-'",
        ),
        (
            "rules:\n- {name: ops, match: {operations: [push]}, action: allow}\n",
            "rule 1 \"ops\": field `match.operations`: unknown operation \"push\", \
             expected create, update or delete",
        ),
        (
            "rules:\n- {name: a, action: allow}\n- {name: a, action: allow}\n",
            "rule 2 \"a\": field `name`: the name is already used by rule 1",
        ),
        (
            "rules:\n- {name: empty, match: {refs: []}, action: allow}\n",
            "rule 1 \"empty\": field `match.refs`: an empty list matches nothing; \
             leave the field out to match any",
        ),
        (
            "rules:\n- {name: allow with approvers, action: allow, approvers: x}\n",
            "rule 1 \"allow with approvers\": field `approvers`: only a hold rule has approvers",
        ),
        (
            "rules:\n- {name: two lines, code: x, action: deny, reason: \"a\\nb\"}\n",
            "rule 1 \"two lines\": field `reason`: \
             must be one line of at most 200 characters: \"a\\nb\"",
        ),
        (
            "default:\n  action: deny\n",
            "default: field `code`: a deny or hold needs a code slug such as protected-ref",
        ),
        (
            "rules:\n- {name: \" \", action: allow}\n",
            "rule 1: field `name`: must not be empty",
        ),
    ];
    for (yaml, expected) in cases {
        assert_eq!(error_of(yaml), expected, "for:\n{yaml}");
    }
}

#[test]
fn unknown_fields_and_bad_values_are_syntax_errors_with_their_place() {
    let unknown = error_of("rules:\n  - name: x\n    action: allow\n    matches: {}\n");
    assert!(unknown.contains("unknown field `matches`"), "{unknown}");
    assert!(
        unknown.contains("rules[0]") && unknown.contains("line 4"),
        "{unknown}"
    );

    let action = error_of("rules:\n  - name: x\n    action: block\n");
    assert!(action.contains("unknown variant `block`"), "{action}");

    let typed = error_of("rules:\n  - name: x\n    action: allow\n    match: {agent: maybe}\n");
    assert!(typed.contains("agent"), "{typed}");

    let list = error_of("rules:\n  - name: x\n    action: allow\n    match: {refs: {a: b}}\n");
    assert!(list.contains("a string or a list of strings"), "{list}");

    let syntax = error_of("rules: [");
    assert!(syntax.starts_with("policy does not parse"), "{syntax}");
}

#[test]
fn a_missing_policy_file_names_the_path() {
    let error =
        Policy::from_file(std::path::Path::new("no/such/policy.yaml")).expect_err("missing");
    assert!(
        error
            .to_string()
            .starts_with("cannot read policy file no/such/policy.yaml"),
        "{error}"
    );
}
