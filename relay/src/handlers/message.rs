//! `operatorMessage` and `clientMessage`: budget, validation, sanitizing, scoped fan-out.

use std::borrow::Cow;

use socketioxide::adapter::Adapter;

use crate::auth::OperatorIdentity;
use crate::handlers::{Ctx, OPERATORS_ROOM, Outcome, Refusal};
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

pub(crate) async fn from_operator<A: Adapter>(
    ctx: &Ctx<'_, A>,
    who: &OperatorIdentity,
    msg: OperatorMessage,
) -> Outcome {
    let content = validate(ctx, msg.body)?;
    let Some(at) = ctx.find_client(&msg.to).await else {
        return Err(Refusal::new(
            ErrorCode::UnknownClient,
            format!("no connected client {:?}", msg.to),
        ));
    };
    let message_id = ctx.relay.message_id();
    let timestamp = ctx.relay.timestamp();
    // both payloads borrow the one validated copy of the content
    let broadcast = OperatorMessageBroadcast {
        client_id: Cow::Borrowed(&msg.to),
        operator_id: who.operator_id,
        operator_name: Cow::Borrowed(&who.name),
        message: BroadcastMessage {
            from: Cow::Borrowed("operator"),
            text: content.text.as_deref().map(Cow::Borrowed),
            image: content.image.as_deref().map(Cow::Borrowed),
            mime_type: content.mime_type.as_deref().map(Cow::Borrowed),
            name: content.name.as_deref().map(Cow::Borrowed),
            timestamp: Cow::Borrowed(&timestamp),
            operator_id: who.operator_id,
            operator_name: Cow::Borrowed(&who.name),
            message_id: Cow::Borrowed(&message_id),
        },
    };
    let to_client = IncomingOperatorMessage {
        from: Cow::Borrowed(&ctx.sid),
        kind: content.kind,
        message: content.text.as_deref().map(Cow::Borrowed),
        image: content.image.as_deref().map(Cow::Borrowed),
        name: content.name.as_deref().map(Cow::Borrowed),
        mime_type: content.mime_type.as_deref().map(Cow::Borrowed),
        message_id: Cow::Borrowed(&message_id),
        timestamp: Cow::Borrowed(&timestamp),
    };
    ctx.to_client(&msg.to, at, event::INCOMING_OPERATOR_MESSAGE, &to_client)
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

pub(crate) async fn from_client<A: Adapter>(ctx: &Ctx<'_, A>, body: MessageBody) -> Outcome {
    let content = validate(ctx, body)?;
    let message_id = ctx.relay.message_id();
    let incoming = IncomingMessage {
        from: Cow::Borrowed(&ctx.sid),
        kind: content.kind,
        message: content.text.map(Cow::Owned),
        image: content.image.map(Cow::Owned),
        name: content.name.map(Cow::Owned),
        mime_type: content.mime_type.map(Cow::Owned),
        size: content.size,
        message_id: Cow::Borrowed(&message_id),
        timestamp: Cow::Owned(ctx.relay.timestamp()),
    };
    ctx.to_room_but_me(OPERATORS_ROOM, event::INCOMING_MESSAGE, &incoming)
        .await;
    ctx.relay.metrics.relayed(event::CLIENT_MESSAGE);
    Ok(Some(message_id))
}

fn validate<A: Adapter>(ctx: &Ctx<'_, A>, body: MessageBody) -> Result<Content, Refusal> {
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
