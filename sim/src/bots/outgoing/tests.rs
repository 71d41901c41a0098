//! Every payload a bot sends is checked against the guide's event table in
//! `docs/PROTOCOL.md`: no field the table lacks, every field it requires, each of its type.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;

use super::*;
use crate::bots::content::ImageCache;
use crate::bots::{Compose, Directory, Script};
use crate::record::Observed;

/// `event → field → (type, required)`, read from the protocol document.
fn guide_table() -> BTreeMap<String, BTreeMap<String, (String, bool)>> {
    let doc = include_str!("../../../../docs/PROTOCOL.md");
    let section = doc
        .split("## What the frontend sends")
        .nth(1)
        .expect("the guide's table is in docs/PROTOCOL.md");
    let mut table: BTreeMap<String, BTreeMap<String, (String, bool)>> = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let event = cells[1].trim_matches('`').to_owned();
        let fields = table.entry(event).or_default();
        let field = cells[2].trim_matches('`');
        if field.is_empty() {
            continue; // an event without an argument
        }
        let (name, required) = match field.strip_suffix('?') {
            Some(n) => (n, false),
            None => (field, true),
        };
        fields.insert(name.to_owned(), (cells[3].to_owned(), required));
    }
    table
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Splits a packet into its event name and argument (`None` for no argument).
fn open(packet: &str) -> (String, Option<Value>) {
    let body = packet
        .strip_prefix("42")
        .expect("an event packet")
        .trim_start_matches(|c: char| c.is_ascii_digit());
    let mut args: Vec<Value> = serde_json::from_str(body).expect("a JSON array");
    let name = args.remove(0).as_str().expect("a name").to_owned();
    (name, args.into_iter().next())
}

fn assert_matches_guide(packet: &str) {
    let table = guide_table();
    let (event, data) = open(packet);
    let fields = table
        .get(&event)
        .unwrap_or_else(|| panic!("{event} is not in the guide's table"));
    let Some(data) = data else {
        assert!(fields.is_empty(), "{event} takes an argument in the guide");
        return;
    };
    let object = data
        .as_object()
        .unwrap_or_else(|| panic!("{event}: {data} is not an object"));
    for (name, value) in object {
        let (ty, _) = fields
            .get(name)
            .unwrap_or_else(|| panic!("{event} carries `{name}`, which the guide does not"));
        assert_eq!(
            json_type(value),
            ty,
            "{event}.{name} is a {ty} in the guide"
        );
    }
    for (name, (_, required)) in fields {
        assert!(
            !required || object.contains_key(name),
            "{event} lacks `{name}`"
        );
    }
}

fn group(src: &str) -> crate::scenario::Group {
    let toml = format!("[scenario]\nname='t'\nduration='1s'\n[[bots]]\n{src}\n");
    crate::scenario::parse(
        std::path::Path::new("t.toml"),
        &toml,
        &crate::scenario::Overrides::default(),
    )
    .expect("valid")
    .groups
    .remove(0)
}

#[test]
fn the_table_is_read() {
    let t = guide_table();
    assert_eq!(t["operatorMessage"]["operatorId"], ("number".into(), true));
    assert_eq!(t["operatorMessage"]["image"], ("string".into(), false));
    assert!(t["getConnectedOperators"].is_empty());
    assert_eq!(t.len(), 6);
}

#[test]
fn every_payload_a_bot_sends_is_what_the_guide_lists() {
    let who = OperatorIdentity {
        operator_id: 7,
        name: "Ann".into(),
    };
    let (_, shared) = crate::bots::tests::shared();
    let mut rng = StdRng::seed_from_u64(1);
    // what each role's script composes, text and image, with typing first
    for (role, image_fraction) in [
        ("operator", 0.0),
        ("operator", 1.0),
        ("client", 0.0),
        ("client", 1.0),
    ] {
        let g = group(&format!(
            "role='{role}'\ncount=1\nimage_fraction={image_fraction}"
        ));
        let images = ImageCache::new(&g, &mut rng);
        let mut script: Box<dyn Script> = if role == "operator" {
            Box::new(crate::bots::operator::Operator::new(who.clone(), None))
        } else {
            Box::new(crate::bots::visitor::Visitor::new(None))
        };
        assert_matches_guide(&packet(event::JOIN, &script.join(&mut rng), Some(0)));
        script.observe(
            &Observed::NewChat {
                client: "v1".into(),
                username: "V".into(),
            },
            &shared.visitors,
        );
        let mut c = Compose {
            group: &g,
            images: &images,
            rng: &mut rng,
            shared: &shared,
        };
        let (drafts, typing) = script.compose(&mut c, 2, true).expect("something to send");
        assert_eq!(drafts.len(), 2);
        assert_matches_guide(&typing.expect("typing first").packet);
        for d in drafts {
            assert_matches_guide(&d.packet);
            let (_, data) = open(&d.packet);
            let data = data.expect("a payload");
            if role == "operator" {
                assert_eq!(data["operatorId"], 7);
                assert_eq!(data["operatorName"], "Ann");
                assert_eq!(data["to"], "v1");
            }
            let kind = if image_fraction > 0.0 {
                "image"
            } else {
                "text"
            };
            assert_eq!(data["type"], kind);
        }
    }
    assert_matches_guide(&get_connected_operators());
    assert_eq!(get_connected_operators(), r#"42["getConnectedOperators"]"#);
    let _ = Directory::default();
}

#[test]
fn a_field_the_guide_lacks_is_caught() {
    let mut j = visitor_join("V");
    j.token = Some("t".into());
    let result = std::panic::catch_unwind(|| assert_matches_guide(&packet(event::JOIN, &j, None)));
    assert!(result.is_err(), "`token` is not in the guide's join");
}
