//! `operatorMessage` and `clientMessage`: budget, validation, sanitizing, scoped fan-out.

use crate::auth::OperatorIdentity;
use crate::handlers::join::OPERATORS_ROOM;
use crate::handlers::{Ctx, Outcome, Refusal};
use crate::images::{self, ImageError};
use crate::protocol::{
    BroadcastMessage, ErrorCode, IncomingMessage, IncomingOperatorMessage, MessageBody,
    MessageKind, OperatorMessage, OperatorMessageBroadcast, event,
};
use crate::sanitize::strip_markup;

/// A message that passed validation, ready to relay.
struct Content {
    kind: MessageKind,
    text: Option<String>,
    image: Option<String>,
    name: Option<String>,
    mime_type: Option<String>,
    size: Option<u64>,
}

pub(crate) async fn from_operator(
    ctx: &Ctx<'_>,
    who: &OperatorIdentity,
    msg: OperatorMessage,
) -> Outcome {
    let content = validate(ctx, msg.body)?;
    if !ctx.relay.presence.has_client(&msg.to) {
        return Err(Refusal::new(
            ErrorCode::UnknownClient,
            format!("no connected client {:?}", msg.to),
        ));
    }
    let message_id = ctx.relay.message_id();
    let timestamp = ctx.relay.timestamp();
    let broadcast = OperatorMessageBroadcast {
        client_id: msg.to.clone(),
        operator_id: who.operator_id,
        operator_name: who.name.clone(),
        message: BroadcastMessage {
            from: "operator".to_owned(),
            text: content.text.clone(),
            image: content.image.clone(),
            mime_type: content.mime_type.clone(),
            name: content.name.clone(),
            timestamp: timestamp.clone(),
            operator_id: who.operator_id,
            operator_name: who.name.clone(),
            message_id: message_id.clone(),
        },
    };
    let to_client = IncomingOperatorMessage {
        from: ctx.sid.clone(),
        kind: content.kind,
        message: content.text,
        image: content.image,
        name: content.name,
        mime_type: content.mime_type,
        message_id: message_id.clone(),
        timestamp,
    };
    ctx.to_room(msg.to, event::INCOMING_OPERATOR_MESSAGE, &to_client)
        .await;
    ctx.to_room_but_me(
        OPERATORS_ROOM,
        event::OPERATOR_MESSAGE_BROADCAST,
        &broadcast,
    )
    .await;
    ctx.relay.metrics.relayed(event::OPERATOR_MESSAGE);
    Ok(Some(message_id))
}

pub(crate) async fn from_client(ctx: &Ctx<'_>, body: MessageBody) -> Outcome {
    let content = validate(ctx, body)?;
    let message_id = ctx.relay.message_id();
    let incoming = IncomingMessage {
        from: ctx.sid.clone(),
        kind: content.kind,
        message: content.text,
        image: content.image,
        name: content.name,
        mime_type: content.mime_type,
        size: content.size,
        message_id: message_id.clone(),
        timestamp: ctx.relay.timestamp(),
    };
    ctx.to_room_but_me(OPERATORS_ROOM, event::INCOMING_MESSAGE, &incoming)
        .await;
    ctx.relay.metrics.relayed(event::CLIENT_MESSAGE);
    Ok(Some(message_id))
}

fn validate(ctx: &Ctx<'_>, body: MessageBody) -> Result<Content, Refusal> {
    match body.kind {
        MessageKind::Text => {
            let raw = body.message.ok_or_else(|| {
                Refusal::new(ErrorCode::InvalidPayload, "a text message needs `message`")
            })?;
            let text = strip_markup(&raw);
            if text.trim().is_empty() {
                return Err(Refusal::new(
                    ErrorCode::InvalidPayload,
                    "text is empty once markup is removed",
                ));
            }
            Ok(Content {
                kind: MessageKind::Text,
                text: Some(text),
                image: None,
                name: None,
                mime_type: None,
                size: None,
            })
        }
        MessageKind::Image => {
            let image = body.image.ok_or_else(|| {
                Refusal::new(ErrorCode::InvalidPayload, "an image message needs `image`")
            })?;
            let size = images::validate(
                &image,
                body.mime_type.as_deref(),
                ctx.relay.config.max_image_bytes,
            )
            .map_err(|e| {
                let code = match e {
                    ImageError::TooLarge { .. } => ErrorCode::PayloadTooLarge,
                    _ => ErrorCode::InvalidPayload,
                };
                Refusal::new(code, e.to_string())
            })?;
            let name = strip_markup(body.name.as_deref().unwrap_or("image"));
            Ok(Content {
                kind: MessageKind::Image,
                text: None,
                image: Some(image),
                name: Some(name),
                mime_type: body.mime_type,
                size: Some(size as u64),
            })
        }
    }
}
