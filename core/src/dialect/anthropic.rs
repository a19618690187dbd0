//! Anthropic's Messages API (`/v1/messages`): typed stream events (`message_start`,
//! `content_block_*`, `message_delta`, `ping`, `error`), whole `message` answers.

use crate::decode::{
    DecodeError, Seen, StreamDecoder, StreamItem, ToolCallDelta, Usage, clamp_u32, find_key_str,
    read_error_object,
};
use crate::json::{JsonStr, Reader, Writer};
use crate::request::*;

impl StreamDecoder {
    /// [`StreamDecoder::dropped`] for Anthropic: a block start too large to read (a server
    /// tool's results) goes with its block, and no arguments that follow are the caller's.
    pub(crate) fn dropped_anthropic(&mut self, event_type: &str) -> bool {
        match event_type {
            "content_block_start" => {
                self.tool_block = None;
                self.template.forget();
                true
            }
            "content_block_stop" | "ping" => true,
            _ => false,
        }
    }

    pub(crate) fn decode_anthropic<'a>(
        &mut self,
        data: &'a str,
        emit: &mut dyn FnMut(StreamItem<'a>),
    ) -> Result<(), DecodeError> {
        if self.template.replay(data, emit) {
            return Ok(());
        }
        let seen = Seen::new(data);
        let emit = &mut |item: StreamItem<'a>| {
            seen.note(&item);
            emit(item)
        };
        let mut r = Reader::new(data);
        let kind = find_key_str(r, "type")?;
        if kind.is_some_and(|t| t.eq_str("message")) {
            // A whole (non-streamed) answer.
            decode_anthropic_message(&mut r, emit)?;
            r.end()?;
            self.done = true;
            emit(StreamItem::Done);
            return Ok(());
        }
        let mut obj = r.object()?;
        let is = |k: &str| kind.is_some_and(|t: JsonStr<'_>| t.eq_str(k));
        let mut index: Option<u32> = None;
        // Items whose block index may come after them in the document.
        let mut pending: Option<StreamItem<'a>> = None;
        while let Some(key) = obj.next_key(&mut r)? {
            match key.key(&mut [0; 32]) {
                "index" => index = r.u64_or_null()?.map(clamp_u32),
                "message" if is("message_start") => {
                    let mut m = r.object()?;
                    while let Some(k) = m.next_key(&mut r)? {
                        match k.key(&mut [0; 32]) {
                            "role" => {
                                if let Some(role) = r.string_or_null()? {
                                    emit(StreamItem::Role { choice: 0, role });
                                }
                            }
                            "usage" => {
                                if let Some(u) = read_usage(&mut r)? {
                                    self.input_tokens = u.input_tokens;
                                }
                            }
                            _ => r.skip_value()?,
                        }
                    }
                }
                "content_block" if is("content_block_start") => {
                    pending = read_anthropic_block(&mut r, true)?;
                }
                "delta" if is("content_block_delta") => {
                    pending = read_anthropic_block(&mut r, false)?;
                }
                "delta" if is("message_delta") => {
                    let mut d = r.object()?;
                    while let Some(k) = d.next_key(&mut r)? {
                        match k.key(&mut [0; 32]) {
                            "stop_reason" => {
                                if let Some(reason) = r.string_or_null()? {
                                    pending = Some(StreamItem::Finish { choice: 0, reason });
                                }
                            }
                            _ => r.skip_value()?,
                        }
                    }
                }
                "usage" if is("message_delta") => {
                    if let Some(u) = read_usage(&mut r)? {
                        if u.has_input {
                            self.input_tokens = u.input_tokens;
                        }
                        // Emitted after the stop reason, below.
                        let usage = Usage {
                            prompt_tokens: self.input_tokens,
                            completion_tokens: u.output_tokens,
                            total_tokens: self.input_tokens.saturating_add(u.output_tokens),
                        };
                        if let Some(p) = pending.take() {
                            emit(p);
                        }
                        pending = Some(StreamItem::Usage(usage));
                    }
                }
                "error" if is("error") => {
                    if let Some(e) = read_error_object(&mut r)? {
                        emit(StreamItem::Error(e));
                    }
                }
                _ => r.skip_value()?,
            }
        }
        r.end()?;
        let index = index.unwrap_or(0);
        if is("content_block_start") {
            // Arguments that follow are the caller's tool call only after a `tool_use` start:
            // a server tool's (`server_tool_use`, `mcp_tool_use`: web search, code execution)
            // are run by the server and are not the caller's to answer.
            self.tool_block = match pending {
                Some(StreamItem::ToolCall(_)) => Some(index),
                _ => None,
            };
            // A template learned in another block does not know which block this is.
            self.template.forget();
        } else if matches!(pending, Some(StreamItem::ToolCall(_))) && self.tool_block != Some(index)
        {
            pending = None;
        }
        if let Some(mut item) = pending {
            if let StreamItem::ToolCall(tc) = &mut item {
                tc.index = index;
            }
            emit(item);
        }
        if is("message_stop") {
            self.done = true;
            emit(StreamItem::Done);
        }
        // Only block deltas are learned: other events change the decoder's state.
        if self.fast && is("content_block_delta") {
            self.template.learn(data, &seen);
        }
        Ok(())
    }
}

/// A non-streamed Anthropic `message`: role, content blocks (text, thinking, tool_use with its
/// `input` as the arguments), stop reason, usage.
fn decode_anthropic_message<'a>(
    r: &mut Reader<'a>,
    emit: &mut dyn FnMut(StreamItem<'a>),
) -> Result<(), DecodeError> {
    let mut o = r.object()?;
    let mut finish = None;
    let mut usage = None;
    while let Some(k) = o.next_key(r)? {
        match k.key(&mut [0; 32]) {
            "role" => {
                if let Some(role) = r.string_or_null()? {
                    emit(StreamItem::Role { choice: 0, role });
                }
            }
            "content" => {
                if r.null()? {
                    continue;
                }
                let mut arr = r.array()?;
                let mut index = 0u32;
                while arr.next(r)? {
                    let kind = find_key_str(*r, "type")?;
                    let is = |t: &str| kind.is_some_and(|k: JsonStr<'_>| k.eq_str(t));
                    let mut b = r.object()?;
                    let (mut id, mut name, mut input) = (None, None, None);
                    while let Some(bk) = b.next_key(r)? {
                        match bk.key(&mut [0; 32]) {
                            "text" if is("text") => {
                                let text = r.string()?;
                                if !text.is_empty() {
                                    emit(StreamItem::Content { choice: 0, text });
                                }
                            }
                            "thinking" if is("thinking") => {
                                let text = r.string()?;
                                if !text.is_empty() {
                                    emit(StreamItem::Reasoning { choice: 0, text });
                                }
                            }
                            "id" => id = r.string_or_null()?,
                            "name" => name = r.string_or_null()?,
                            "input" => input = Some(r.raw_value()?),
                            _ => r.skip_value()?,
                        }
                    }
                    if is("tool_use") {
                        emit(StreamItem::ToolCall(ToolCallDelta {
                            choice: 0,
                            index,
                            id,
                            name,
                            arguments: JsonStr::plain(input.unwrap_or("{}")),
                        }));
                    }
                    index = index.saturating_add(1);
                }
            }
            "stop_reason" => finish = r.string_or_null()?,
            "usage" => {
                if let Some(u) = read_usage(r)? {
                    usage = Some(Usage {
                        prompt_tokens: u.input_tokens,
                        completion_tokens: u.output_tokens,
                        total_tokens: u.input_tokens.saturating_add(u.output_tokens),
                    });
                }
            }
            _ => r.skip_value()?,
        }
    }
    if let Some(reason) = finish {
        emit(StreamItem::Finish { choice: 0, reason });
    }
    if let Some(u) = usage {
        emit(StreamItem::Usage(u));
    }
    Ok(())
}

/// Anthropic usage counters.
struct AnthropicUsage {
    input_tokens: u64,
    has_input: bool,
    output_tokens: u64,
}

fn read_usage(r: &mut Reader<'_>) -> Result<Option<AnthropicUsage>, DecodeError> {
    if r.null()? {
        return Ok(None);
    }
    let mut u = AnthropicUsage {
        input_tokens: 0,
        has_input: false,
        output_tokens: 0,
    };
    let mut o = r.object()?;
    while let Some(k) = o.next_key(r)? {
        match k.key(&mut [0; 32]) {
            "input_tokens" => {
                if let Some(v) = r.u64_or_null()? {
                    u.input_tokens = v;
                    u.has_input = true;
                }
            }
            "output_tokens" => u.output_tokens = r.u64_or_null()?.unwrap_or(0),
            _ => r.skip_value()?,
        }
    }
    Ok(Some(u))
}

/// Reads an Anthropic `content_block` (start) or block `delta` object.
fn read_anthropic_block<'a>(
    r: &mut Reader<'a>,
    start: bool,
) -> Result<Option<StreamItem<'a>>, DecodeError> {
    let kind = find_key_str(*r, "type")?;
    let is = |k: &str| kind.is_some_and(|t: JsonStr<'_>| t.eq_str(k));
    let mut o = r.object()?;
    let mut item = None;
    let (mut id, mut name) = (None, None);
    while let Some(k) = o.next_key(r)? {
        match (k.key(&mut [0; 32]), start) {
            ("text", _) if is("text") || is("text_delta") => {
                let text = r.string()?;
                if !text.is_empty() {
                    item = Some(StreamItem::Content { choice: 0, text });
                }
            }
            ("thinking", _) if is("thinking") || is("thinking_delta") => {
                let text = r.string()?;
                if !text.is_empty() {
                    item = Some(StreamItem::Reasoning { choice: 0, text });
                }
            }
            ("partial_json", false) if is("input_json_delta") => {
                let arguments = r.string()?;
                item = Some(StreamItem::ToolCall(ToolCallDelta {
                    choice: 0,
                    index: 0,
                    id: None,
                    name: None,
                    arguments,
                }));
            }
            ("id", true) => id = r.string_or_null()?,
            ("name", true) => name = r.string_or_null()?,
            _ => r.skip_value()?,
        }
    }
    if start && is("tool_use") {
        item = Some(StreamItem::ToolCall(ToolCallDelta {
            choice: 0,
            index: 0,
            id,
            name,
            arguments: JsonStr::default(),
        }));
    }
    Ok(item)
}

// The request body.

impl ChatRequest<'_> {
    pub(crate) fn emit_anthropic(
        &self,
        m: &mut Members<'_>,
        w: &mut Writer<'_>,
    ) -> Result<(), RequestError> {
        m.put(w, b"{\"model\":");
        w.string(self.model);
        m.put(w, b",\"max_tokens\":");
        let max = self
            .max_tokens
            .or(self.max_completion_tokens)
            .unwrap_or(DEFAULT_ANTHROPIC_MAX_TOKENS);
        w.u64(u64::from(max));
        // System and developer messages become the top-level `system` blocks.
        let is_system = |m: &&Message<'_>| matches!(m.role, Role::System | Role::Developer);
        if self.messages.iter().any(|m| is_system(&m)) {
            m.put(w, b",\"system\":[");
            let mut first = true;
            for m in self.messages.iter().filter(is_system) {
                for_each_text(m.content, |t| {
                    if !first {
                        w.byte(b',');
                    }
                    first = false;
                    w.raw(b"{\"type\":\"text\",\"text\":");
                    w.string(t);
                    w.byte(b'}');
                });
            }
            w.byte(b']');
        }
        m.put(w, b",\"messages\":[");
        let mut first = true;
        for msg in self.messages.iter().filter(|m| !is_system(m)) {
            if !first {
                w.byte(b',');
            }
            first = false;
            match msg.role {
                Role::Tool => {
                    let id = msg.tool_call_id.ok_or(RequestError::MissingToolCallId)?;
                    w.raw(b"{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":");
                    w.string(id);
                    w.raw(b",\"content\":");
                    anthropic_content(w, msg.content);
                    w.raw(b"}]}");
                }
                role => {
                    w.raw(if role == Role::Assistant {
                        b"{\"role\":\"assistant\",\"content\":"
                    } else {
                        b"{\"role\":\"user\",\"content\":"
                    });
                    if msg.tool_calls.is_empty() {
                        anthropic_content(w, msg.content);
                    } else {
                        w.byte(b'[');
                        let mut n = 0;
                        if let Some(c) = msg.content {
                            n = anthropic_blocks(w, c);
                        }
                        for c in msg.tool_calls {
                            let input = RawJson::new(if c.arguments.trim_ascii().is_empty() {
                                "{}"
                            } else {
                                c.arguments
                            })
                            .map_err(|_| RequestError::InvalidToolArguments)?;
                            // Anthropic's `input` is an object: an array or a string there
                            // gets the request refused.
                            if !input.as_str().trim_ascii_start().starts_with('{') {
                                return Err(RequestError::InvalidToolArguments);
                            }
                            if n > 0 {
                                w.byte(b',');
                            }
                            n += 1;
                            w.raw(b"{\"type\":\"tool_use\",\"id\":");
                            w.string(c.id);
                            w.raw(b",\"name\":");
                            w.string(c.name);
                            w.raw(b",\"input\":");
                            w.raw(input.as_str().as_bytes());
                            w.byte(b'}');
                        }
                        w.byte(b']');
                    }
                    w.byte(b'}');
                }
            }
        }
        if first {
            // Only system messages: Anthropic wants at least one in `messages`.
            return Err(RequestError::NoMessages);
        }
        w.byte(b']');
        self.emit_sampling(m, w);
        if !self.stop.is_empty() {
            m.put(w, b",\"stop_sequences\":");
            string_array(w, self.stop);
        }
        if let Some(u) = self.user {
            m.put(w, b",\"metadata\":{\"user_id\":");
            w.string(u);
            w.byte(b'}');
        }
        if !self.tools.is_empty() {
            m.put(w, b",\"tools\":[");
            for (i, t) in self.tools.iter().enumerate() {
                if i > 0 {
                    w.byte(b',');
                }
                w.raw(b"{\"name\":");
                w.string(t.name);
                if let Some(d) = t.description {
                    w.raw(b",\"description\":");
                    w.string(d);
                }
                w.raw(b",\"input_schema\":");
                match t.parameters {
                    Some(p) => w.raw(p.as_str().as_bytes()),
                    None => w.raw(b"{\"type\":\"object\"}"),
                }
                if t.strict {
                    w.raw(b",\"strict\":true");
                }
                w.byte(b'}');
            }
            w.byte(b']');
        }
        // `parallel_tool_calls: false` is Anthropic's `disable_parallel_tool_use: true`, a
        // member of the tool choice (`auto` when none is set).
        let serial = !self.tools.is_empty() && self.parallel_tool_calls == Some(false);
        let choice = match self.tool_choice {
            None if serial => Some(ToolChoice::Auto),
            c => c,
        };
        if let Some(tc) = choice {
            m.put(w, b",\"tool_choice\":");
            match tc {
                ToolChoice::Auto => w.raw(b"{\"type\":\"auto\""),
                ToolChoice::None => w.raw(b"{\"type\":\"none\""),
                ToolChoice::Required => w.raw(b"{\"type\":\"any\""),
                ToolChoice::Function(name) => {
                    w.raw(b"{\"type\":\"tool\",\"name\":");
                    w.string(name);
                }
            }
            if serial && tc != ToolChoice::None {
                w.raw(b",\"disable_parallel_tool_use\":true");
            }
            w.byte(b'}');
        }
        match self.response_format {
            Some(ResponseFormat::JsonObject) => return Err(RequestError::UnsupportedField),
            Some(ResponseFormat::JsonSchema { schema, .. }) => {
                m.put(
                    w,
                    b",\"output_config\":{\"format\":{\"type\":\"json_schema\",\"schema\":",
                );
                w.raw(schema.as_str().as_bytes());
                w.raw(b"}}");
            }
            Some(ResponseFormat::Text) | None => {}
        }
        if let Some(Thinking::Enabled { budget_tokens }) = self.thinking {
            if budget_tokens < MIN_THINKING_BUDGET || budget_tokens >= max {
                return Err(RequestError::InvalidThinkingBudget);
            }
            m.put(w, b",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":");
            w.u64(u64::from(budget_tokens));
            w.byte(b'}');
        }
        m.put(
            w,
            if self.stream {
                b",\"stream\":true"
            } else {
                b",\"stream\":false"
            },
        );
        Ok(())
    }
}

fn for_each_text(content: Option<Content<'_>>, mut f: impl FnMut(&str)) {
    match content {
        None => {}
        Some(Content::Text(t)) => f(t),
        Some(Content::Parts(parts)) => {
            for p in parts {
                if let Part::Text(t) = p {
                    f(t);
                }
            }
        }
    }
}

/// Anthropic message content: a string, or blocks for multi-part content.
fn anthropic_content(w: &mut Writer<'_>, content: Option<Content<'_>>) {
    match content {
        None => w.raw(b"\"\""),
        Some(Content::Text(t)) => w.string(t),
        Some(c @ Content::Parts(_)) => {
            w.byte(b'[');
            anthropic_blocks(w, c);
            w.byte(b']');
        }
    }
}

/// Writes content blocks (comma-separated, no brackets); returns how many.
fn anthropic_blocks(w: &mut Writer<'_>, content: Content<'_>) -> usize {
    let mut n = 0;
    let mut sep = |w: &mut Writer<'_>| {
        if n > 0 {
            w.byte(b',');
        }
        n += 1;
    };
    match content {
        Content::Text(t) => {
            sep(w);
            w.raw(b"{\"type\":\"text\",\"text\":");
            w.string(t);
            w.byte(b'}');
        }
        Content::Parts(parts) => {
            for p in parts {
                sep(w);
                match p {
                    Part::Text(t) => {
                        w.raw(b"{\"type\":\"text\",\"text\":");
                        w.string(t);
                        w.byte(b'}');
                    }
                    Part::ImageUrl { url, .. } => {
                        w.raw(b"{\"type\":\"image\",\"source\":");
                        match parse_data_url(url) {
                            Some((media_type, data)) => {
                                w.raw(b"{\"type\":\"base64\",\"media_type\":");
                                w.string(media_type);
                                w.raw(b",\"data\":");
                                w.string(data);
                            }
                            None => {
                                w.raw(b"{\"type\":\"url\",\"url\":");
                                w.string(url);
                            }
                        }
                        w.raw(b"}}");
                    }
                }
            }
        }
    }
    n
}

/// `data:<media type>;base64,<data>` → (media type, data).
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((media, data))
}
