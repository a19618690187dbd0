//! OpenAI-compatible `/chat/completions`: `chat.completion.chunk` events and whole
//! `chat.completion` answers.

use crate::decode::{
    ApiError, DecodeError, Seen, StreamDecoder, StreamItem, ToolCallDelta, Usage, clamp_u32,
    error_member, read_error_object,
};
use crate::json::{JsonStr, Reader, Writer};
use crate::request::*;

impl StreamDecoder {
    pub(crate) fn decode_openai_chunk<'a>(
        &mut self,
        data: &'a str,
        emit: &mut dyn FnMut(StreamItem<'a>),
    ) -> Result<(), DecodeError> {
        if self.template.replay(data, emit) {
            return Ok(());
        }
        let seen = Seen::new(data);
        decode_openai_full(data, &seen, &mut |item| {
            seen.note(&item);
            emit(item)
        })?;
        if self.fast {
            self.template.learn(data, &seen);
        }
        Ok(())
    }
}

/// The full parse of one OpenAI-compatible chunk. Notes in `seen` where the values of root
/// members it skips lie (a template lets them vary).
fn decode_openai_full<'a>(
    data: &'a str,
    seen: &Seen<'_>,
    emit: &mut dyn FnMut(StreamItem<'a>),
) -> Result<(), DecodeError> {
    let mut r = Reader::new(data);
    let mut root = r.object()?;
    let mut usage = None;
    let mut error = None;
    // The bare error shape: {"object":"error","message":...}
    let mut object_is_error = false;
    let mut bare = ApiError::default();
    let mut bare_seen = false;
    while let Some(key) = root.next_key(&mut r)? {
        match key.key(&mut [0; 32]) {
            "choices" => {
                if r.null()? {
                    continue;
                }
                let mut arr = r.array()?;
                let mut position = 0u32;
                while arr.next(&mut r)? {
                    decode_choice(&mut r, position, emit)?;
                    position = position.saturating_add(1);
                }
            }
            "usage" => {
                if !r.null()? {
                    usage = Some(read_openai_usage(&mut r)?);
                }
            }
            "error" => error = read_error_object(&mut r)?,
            "object" => {
                object_is_error = r.string_or_null()?.is_some_and(|s| s.eq_str("error"));
            }
            k if error_member(&mut bare, k, &mut r)? => bare_seen |= k == "message",
            _ => {
                r.peek()?;
                let start = r.offset();
                r.skip_value()?;
                seen.free(start, r.offset());
            }
        }
    }
    r.end()?;
    if let Some(u) = usage {
        emit(StreamItem::Usage(u));
    }
    if let Some(e) = error {
        emit(StreamItem::Error(e));
    } else if object_is_error && bare_seen {
        emit(StreamItem::Error(bare));
    }
    Ok(())
}

fn read_openai_usage(r: &mut Reader<'_>) -> Result<Usage, DecodeError> {
    let mut u = Usage::default();
    let mut total = None;
    let mut o = r.object()?;
    while let Some(k) = o.next_key(r)? {
        match k.key(&mut [0; 32]) {
            "prompt_tokens" => u.prompt_tokens = r.u64_or_null()?.unwrap_or(0),
            "completion_tokens" => u.completion_tokens = r.u64_or_null()?.unwrap_or(0),
            "total_tokens" => total = r.u64_or_null()?,
            _ => r.skip_value()?,
        }
    }
    u.total_tokens = total.unwrap_or(u.prompt_tokens.saturating_add(u.completion_tokens));
    Ok(u)
}

fn decode_choice<'a>(
    r: &mut Reader<'a>,
    position: u32,
    emit: &mut dyn FnMut(StreamItem<'a>),
) -> Result<(), DecodeError> {
    if r.null()? {
        return Ok(());
    }
    // The choice index is needed before the delta's items; it is nearly always the first
    // key, and a cheap look-ahead finds it otherwise.
    let mut choice = position;
    {
        let mut look = *r;
        let mut o = look.object()?;
        while let Some(k) = o.next_key(&mut look)? {
            if k.key(&mut [0; 32]) == "index" {
                if let Ok(Some(i)) = look.u64_or_null() {
                    choice = clamp_u32(i);
                }
                break;
            }
            look.skip_value()?;
        }
    }
    let mut finish = None;
    let mut o = r.object()?;
    while let Some(k) = o.next_key(r)? {
        match k.key(&mut [0; 32]) {
            // "message" is the non-streamed form of "delta".
            "delta" | "message" => decode_delta(r, choice, emit)?,
            "finish_reason" => finish = r.string_or_null()?,
            _ => r.skip_value()?,
        }
    }
    if let Some(reason) = finish {
        emit(StreamItem::Finish { choice, reason });
    }
    Ok(())
}

fn decode_delta<'a>(
    r: &mut Reader<'a>,
    choice: u32,
    emit: &mut dyn FnMut(StreamItem<'a>),
) -> Result<(), DecodeError> {
    if r.null()? {
        return Ok(());
    }
    let mut o = r.object()?;
    while let Some(k) = o.next_key(r)? {
        let text_item: fn(u32, JsonStr<'a>) -> StreamItem<'a> = match k.key(&mut [0; 32]) {
            "content" => |choice, text| StreamItem::Content { choice, text },
            "reasoning_content" | "reasoning" => {
                |choice, text| StreamItem::Reasoning { choice, text }
            }
            "refusal" => |choice, text| StreamItem::Refusal { choice, text },
            "role" => {
                if let Some(role) = r.string_or_null()? {
                    emit(StreamItem::Role { choice, role });
                }
                continue;
            }
            "tool_calls" => {
                if r.null()? {
                    continue;
                }
                let mut arr = r.array()?;
                let mut position = 0u32;
                while arr.next(r)? {
                    if let Some(tc) = read_tool_call(r, choice, position)? {
                        emit(StreamItem::ToolCall(tc));
                    }
                    position = position.saturating_add(1);
                }
                continue;
            }
            _ => {
                r.skip_value()?;
                continue;
            }
        };
        // Text fields: a string, or null; other shapes (content part arrays) are skipped.
        if r.peek()? == b'"' {
            let text = r.string()?;
            if !text.is_empty() {
                emit(text_item(choice, text));
            }
        } else {
            r.skip_value()?;
        }
    }
    Ok(())
}

fn read_tool_call<'a>(
    r: &mut Reader<'a>,
    choice: u32,
    position: u32,
) -> Result<Option<ToolCallDelta<'a>>, DecodeError> {
    if r.null()? {
        return Ok(None);
    }
    let mut tc = ToolCallDelta {
        choice,
        index: position,
        id: None,
        name: None,
        arguments: JsonStr::default(),
    };
    let mut o = r.object()?;
    while let Some(k) = o.next_key(r)? {
        match k.key(&mut [0; 32]) {
            "index" => {
                if let Some(i) = r.u64_or_null()? {
                    tc.index = clamp_u32(i);
                }
            }
            "id" => tc.id = r.string_or_null()?,
            "function" => {
                if r.null()? {
                    continue;
                }
                let mut f = r.object()?;
                while let Some(fk) = f.next_key(r)? {
                    match fk.key(&mut [0; 32]) {
                        "name" => tc.name = r.string_or_null()?,
                        "arguments" => tc.arguments = r.string_or_null()?.unwrap_or_default(),
                        _ => r.skip_value()?,
                    }
                }
            }
            _ => r.skip_value()?,
        }
    }
    Ok(Some(tc))
}

// The request body.

impl ChatRequest<'_> {
    pub(crate) fn emit_openai(
        &self,
        m: &mut Members<'_>,
        w: &mut Writer<'_>,
    ) -> Result<(), RequestError> {
        m.put(w, b"{\"model\":");
        w.string(self.model);
        m.put(w, b",\"messages\":[");
        for (i, m) in self.messages.iter().enumerate() {
            if i > 0 {
                w.byte(b',');
            }
            w.raw(b"{\"role\":\"");
            w.raw(m.role.as_str().as_bytes());
            w.raw(b"\",\"content\":");
            match m.content {
                None => w.raw(b"null"),
                Some(Content::Text(t)) => w.string(t),
                Some(Content::Parts(parts)) => {
                    w.byte(b'[');
                    for (j, p) in parts.iter().enumerate() {
                        if j > 0 {
                            w.byte(b',');
                        }
                        match p {
                            Part::Text(t) => {
                                w.raw(b"{\"type\":\"text\",\"text\":");
                                w.string(t);
                                w.byte(b'}');
                            }
                            Part::ImageUrl { url, detail } => {
                                w.raw(b"{\"type\":\"image_url\",\"image_url\":{\"url\":");
                                w.string(url);
                                if let Some(d) = detail {
                                    w.raw(b",\"detail\":");
                                    w.string(d);
                                }
                                w.raw(b"}}");
                            }
                        }
                    }
                    w.byte(b']');
                }
            }
            if let Some(n) = m.name {
                w.raw(b",\"name\":");
                w.string(n);
            }
            if m.role == Role::Tool {
                let id = m.tool_call_id.ok_or(RequestError::MissingToolCallId)?;
                w.raw(b",\"tool_call_id\":");
                w.string(id);
            }
            if !m.tool_calls.is_empty() {
                w.raw(b",\"tool_calls\":[");
                for (j, c) in m.tool_calls.iter().enumerate() {
                    if j > 0 {
                        w.byte(b',');
                    }
                    w.raw(b"{\"id\":");
                    w.string(c.id);
                    w.raw(b",\"type\":\"function\",\"function\":{\"name\":");
                    w.string(c.name);
                    w.raw(b",\"arguments\":");
                    w.string(c.arguments);
                    w.raw(b"}}");
                }
                w.byte(b']');
            }
            w.byte(b'}');
        }
        w.byte(b']');
        let mut num = |w: &mut Writer<'_>, key: &[u8], v: Option<u32>| {
            if let Some(v) = v {
                m.put(w, key);
                w.u64(u64::from(v));
            }
        };
        num(w, b",\"max_tokens\":", self.max_tokens);
        num(
            w,
            b",\"max_completion_tokens\":",
            self.max_completion_tokens,
        );
        self.emit_sampling(m, w);
        if !self.stop.is_empty() {
            m.put(w, b",\"stop\":");
            string_array(w, self.stop);
        }
        if let Some(s) = self.seed {
            m.put(w, b",\"seed\":");
            w.i64(s);
        }
        if let Some(u) = self.user {
            m.put(w, b",\"user\":");
            w.string(u);
        }
        if !self.tools.is_empty() {
            m.put(w, b",\"tools\":[");
            for (i, t) in self.tools.iter().enumerate() {
                if i > 0 {
                    w.byte(b',');
                }
                w.raw(b"{\"type\":\"function\",\"function\":{\"name\":");
                w.string(t.name);
                if let Some(d) = t.description {
                    w.raw(b",\"description\":");
                    w.string(d);
                }
                if let Some(p) = t.parameters {
                    w.raw(b",\"parameters\":");
                    w.raw(p.as_str().as_bytes());
                }
                if t.strict {
                    w.raw(b",\"strict\":true");
                }
                w.raw(b"}}");
            }
            w.byte(b']');
            if let Some(p) = self.parallel_tool_calls {
                m.put(w, b",\"parallel_tool_calls\":");
                w.raw(if p { b"true" } else { b"false" });
            }
        }
        if let Some(tc) = self.tool_choice {
            m.put(w, b",\"tool_choice\":");
            match tc {
                ToolChoice::Auto => w.raw(b"\"auto\""),
                ToolChoice::None => w.raw(b"\"none\""),
                ToolChoice::Required => w.raw(b"\"required\""),
                ToolChoice::Function(name) => {
                    w.raw(b"{\"type\":\"function\",\"function\":{\"name\":");
                    w.string(name);
                    w.raw(b"}}");
                }
            }
        }
        if let Some(f) = self.response_format {
            m.put(w, b",\"response_format\":");
            match f {
                ResponseFormat::Text => w.raw(b"{\"type\":\"text\"}"),
                ResponseFormat::JsonObject => w.raw(b"{\"type\":\"json_object\"}"),
                ResponseFormat::JsonSchema {
                    name,
                    schema,
                    strict,
                } => {
                    w.raw(b"{\"type\":\"json_schema\",\"json_schema\":{\"name\":");
                    w.string(name);
                    w.raw(b",\"schema\":");
                    w.raw(schema.as_str().as_bytes());
                    w.raw(if strict { b",\"strict\":true}}" } else { b"}}" });
                }
            }
        }
        if let Some(e) = self.reasoning_effort {
            m.put(w, b",\"reasoning_effort\":");
            w.string(e.as_str());
        }
        if self.stream {
            m.put(w, b",\"stream\":true");
            match (self.include_usage, self.include_obfuscation) {
                (true, true) => m.put(w, b",\"stream_options\":{\"include_usage\":true}"),
                (true, false) => m.put(
                    w,
                    b",\"stream_options\":{\"include_usage\":true,\"include_obfuscation\":false}",
                ),
                (false, false) => m.put(w, b",\"stream_options\":{\"include_obfuscation\":false}"),
                (false, true) => {}
            }
        } else {
            m.put(w, b",\"stream\":false");
        }
        Ok(())
    }
}
