//! Content attacks: markup in texts, visitor names and file names; images that are not
//! what they claim or are too big; payloads and frames past the limits.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reports::attacks::Attack;
use serde_json::{Value, json};

use super::arena::Arena;
use super::{Outcome, judged};

const MARKUP: &str = "<script>alert(1)</script><img src=x onerror=alert(1)><b>bold</b>";
const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

fn image(mime: &str, bytes: &[u8], name: &str) -> Value {
    json!({"type": "image", "mimeType": mime, "name": name, "size": bytes.len(),
           "image": format!("data:{mime};base64,{}", STANDARD.encode(bytes))})
}

pub(super) async fn attempt(arena: &Arena, attack: Attack, _n: u32) -> Result<Outcome, String> {
    let marker = arena.marker();
    let visitor_name = if attack == Attack::MarkupVisitorName {
        format!("{MARKUP}{marker}")
    } else {
        "smuggler".to_owned()
    };
    let visitor = arena
        .visitor_socket(&visitor_name)
        .await
        .map_err(|e| e.to_string())?;
    let limits = arena.limits;
    let payloads: Vec<Value> = match attack {
        Attack::MarkupText => {
            vec![json!({"type": "text", "message": format!("{marker} {MARKUP}")})]
        }
        Attack::MarkupFileName => vec![image("image/png", PNG, &format!("{MARKUP}{marker}.png"))],
        Attack::SvgHtmlMime => vec![
            image(
                "image/svg+xml",
                format!("<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'>{marker}</svg>")
                    .as_bytes(),
                &format!("{marker}.svg"),
            ),
            image(
                "text/html",
                format!("<html>{MARKUP}</html>").as_bytes(),
                &format!("{marker}.html"),
            ),
        ],
        Attack::NotAnImage => vec![image(
            "image/png",
            format!("not an image at all {marker}").as_bytes(),
            &format!("{marker}.png"),
        )],
        Attack::ImageOverLimit => {
            let mut bytes = PNG.to_vec();
            bytes.resize(limits.max_image_bytes + 1, 0);
            vec![image("image/png", &bytes, &format!("{marker}.png"))]
        }
        Attack::PayloadOverLimit => {
            vec![
                json!({"type": "text", "message": format!("{marker} {}", "x".repeat(limits.max_payload_bytes))}),
            ]
        }
        Attack::FrameOverLimit => {
            let pad = "x".repeat(limits.max_payload_bytes.saturating_mul(4) + 1024);
            vec![json!({"type": "text", "message": format!("{marker} {pad}")})]
        }
        _ => Vec::new(),
    };
    for p in &payloads {
        let _ = visitor.emit("clientMessage", p, None);
    }
    // an operator of the adversary's own sends the same to the witness visitor
    let insider = if matches!(attack, Attack::MarkupText | Attack::MarkupFileName) {
        let (_, conn) = arena.insider().await?;
        for p in &payloads {
            let mut p = p.clone();
            p["to"] = json!(arena.visitor);
            let _ = conn.emit("operatorMessage", &p, None);
        }
        Some(conn)
    } else {
        None
    };
    arena.settle().await;
    visitor.close().await;
    if let Some(c) = insider {
        c.close().await;
    }
    let seen = arena.with_marker(&marker);
    let evidence = match attack {
        Attack::MarkupText | Attack::MarkupFileName | Attack::MarkupVisitorName => seen
            .iter()
            .find(|s| s.data.contains(['<', '>']))
            .map(|s| format!("markup delivered: {}", s.describe())),
        _ => seen.first().map(|s| format!("delivered: {}", s.describe())),
    };
    judged(evidence)
}
