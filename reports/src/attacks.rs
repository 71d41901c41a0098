//! The adversary's attacks, named once: what each tries and what counts as its success.
//!
//! The simulator carries them out, `result.json` keys its `attacks.*` counters by these
//! names, and the report lists them in this order.

use std::fmt;

/// What an attack goes after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// Passing for someone else.
    Identity,
    /// Reaching a socket a message must not reach.
    Routing,
    /// Smuggling markup or non-images, or oversized content.
    Content,
    /// Connecting from a foreign web page.
    Hijack,
    /// Floods, storms and sockets that stop answering.
    Volume,
    /// Malformed packets and payloads (last: they are the likeliest to down a target, and
    /// nothing after that can be judged).
    Shape,
}

impl Family {
    /// The family's name in results.
    pub fn name(self) -> &'static str {
        match self {
            Family::Identity => "identity",
            Family::Routing => "routing",
            Family::Content => "content",
            Family::Shape => "shape",
            Family::Hijack => "hijack",
            Family::Volume => "volume",
        }
    }
}

macro_rules! attacks {
    ($($variant:ident, $name:literal, $family:ident, $succeeds:literal;)*) => {
        /// One attack of the catalogue.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Attack {
            $(
                #[doc = $succeeds]
                $variant,
            )*
        }

        impl Attack {
            /// Every attack, in report order.
            pub const ALL: &'static [Attack] = &[$(Attack::$variant),*];

            /// The attack's name in scenarios and results.
            pub fn name(self) -> &'static str {
                match self { $(Attack::$variant => $name,)* }
            }

            /// What it goes after.
            pub fn family(self) -> Family {
                match self { $(Attack::$variant => Family::$family,)* }
            }

            /// What the oracle must see for the attack to count as a success.
            pub fn succeeds_when(self) -> &'static str {
                match self { $(Attack::$variant => $succeeds,)* }
            }
        }
    };
}

attacks! {
    VisitorOperatorEvents, "visitor_operator_events", Identity,
        "a visitor's operatorMessage or operatorTyping reaches anyone";
    ForgedToken, "forged_token", Identity,
        "an operator join with a token whose signature is garbage is let in";
    ExpiredToken, "expired_token", Identity,
        "an operator join with a correctly signed but expired token is let in";
    AlgNoneToken, "alg_none_token", Identity,
        "an operator join with an unsigned `alg: none` token is let in";
    WrongSecretToken, "wrong_secret_token", Identity,
        "an operator join with a token signed by another secret is let in";
    PayloadIdentity, "payload_identity", Identity,
        "a message from a valid operator is delivered under the operatorId or operatorName its payload claims";
    SecondJoin, "second_join", Identity,
        "a visitor that joins again as an operator without a token gets operator powers";
    ToUnknownId, "to_unknown_id", Routing,
        "an operatorMessage or operatorTyping to an id nobody has is delivered to anyone";
    ToOperatorSocket, "to_operator_socket", Routing,
        "an operatorMessage or operatorTyping addressed to an operator's socket id reaches it as a visitor's event";
    ToRoomName, "to_room_name", Routing,
        "an operatorMessage or operatorTyping addressed to a room name (`operators`, `operator:<id>`) reaches its members";
    OtherNamespace, "other_namespace", Routing,
        "events sent in another namespace are delivered to the chat";
    MarkupText, "markup_text", Content,
        "a message text is delivered with markup (`<` or `>`)";
    MarkupVisitorName, "markup_visitor_name", Content,
        "a visitor name is announced with markup";
    MarkupFileName, "markup_file_name", Content,
        "an image file name is delivered with markup";
    SvgHtmlMime, "svg_html_mime", Content,
        "an image claimed as image/svg+xml or text/html is delivered";
    NotAnImage, "not_an_image", Content,
        "base64 that is not an image of its claimed type is delivered as one";
    ImageOverLimit, "image_over_limit", Content,
        "an image decoding past the image limit is delivered";
    PayloadOverLimit, "payload_over_limit", Content,
        "a message past the payload limit is delivered";
    FrameOverLimit, "frame_over_limit", Content,
        "a frame of many times the payload limit downs the target or is delivered";
    ForeignOriginWebsocket, "foreign_origin_websocket", Hijack,
        "a WebSocket upgrade from a foreign Origin is accepted and can chat";
    ForeignOriginPolling, "foreign_origin_polling", Hijack,
        "long-polling from a foreign Origin is accepted and can chat";
    MessageFlood, "message_flood", Volume,
        "more messages than the rate limit allows are delivered within a minute";
    TypingFlood, "typing_flood", Volume,
        "more typing events than the typing limit allows are delivered within a minute";
    ConnectStorm, "connect_storm", Volume,
        "a storm of connects and disconnects downs the target or leaves visitors announced but never ended";
    HalfOpen, "half_open", Volume,
        "a visitor that stops answering pings is still there past the target's own ping deadline";
    WrongTypes, "wrong_types", Shape,
        "a message with fields of the wrong JSON types is delivered, or downs the target";
    ExtraFields, "extra_fields", Shape,
        "extra fields (`from`, `clientId`) replace what the target should stamp";
    DeepNesting, "deep_nesting", Shape,
        "deeply nested arrays down the target";
    HugeArray, "huge_array", Shape,
        "a huge array in a payload downs the target or is delivered";
    LoneSurrogates, "lone_surrogates", Shape,
        "lone UTF-16 surrogates down the target or come back as a payload that does not parse";
    NonJson, "non_json", Shape,
        "packets that are not JSON down the target";
    UnknownEvent, "unknown_event", Shape,
        "unknown events are delivered to anyone, or down the target";
    ErrorEventName, "error_event_name", Shape,
        "an event named `error` (or a reserved name) is delivered, or downs the target";
    NonStringEventName, "non_string_event_name", Shape,
        "events whose name is a number, null or an object down the target";
    BinaryPlaceholder, "binary_placeholder", Shape,
        "binary packets with placeholder tricks (`num: \"splice\"`, CVE-2022-2421) down the target or deliver";
    AttachmentBomb, "attachment_bomb", Shape,
        "binary packets declaring far more attachments than follow (CVE-2026-33151) down the target or grow its memory past the bound";
    PollingBogusLength, "polling_bogus_length", Shape,
        "long-polling POST bodies with bogus length prefixes (CVE-2020-36048) down the target or deliver";
    MissingFields, "missing_fields", Shape,
        "a message missing required fields is delivered, or downs the target";
    JoinNull, "join_null", Shape,
        "a `join` with a null or missing payload downs the target";
}

impl Attack {
    /// The attack named `name`.
    pub fn from_name(name: &str) -> Option<Attack> {
        Attack::ALL.iter().copied().find(|a| a.name() == name)
    }
}

impl fmt::Display for Attack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The verdicts an attack's attempts get, as counters `attacks.<verdict>` and
/// `attacks.<name>.<verdict>`.
pub const VERDICTS: [&str; 4] = ["attempted", "blocked", "succeeded", "not_judged"];

/// True for an `attacks.*` counter name.
pub fn is_attack_counter(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("attacks.") else {
        return false;
    };
    match rest.rsplit_once('.') {
        None => VERDICTS.contains(&rest),
        Some((attack, verdict)) => {
            Attack::from_name(attack).is_some() && VERDICTS.contains(&verdict)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut names: Vec<&str> = Attack::ALL.iter().map(|a| a.name()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        for a in Attack::ALL {
            assert_eq!(Attack::from_name(a.name()), Some(*a));
        }
    }

    #[test]
    fn attack_counters_are_recognised() {
        assert!(is_attack_counter("attacks.succeeded"));
        assert!(is_attack_counter("attacks.alg_none_token.succeeded"));
        assert!(!is_attack_counter("attacks.nope.succeeded"));
        assert!(!is_attack_counter("attacks.alg_none_token.won"));
        assert!(!is_attack_counter("lost"));
    }
}
