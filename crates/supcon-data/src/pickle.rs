//! Python's pickle format, read without running anything: the Python versions of CIFAR-10 and
//! CIFAR-100 (`cifar-10-batches-py`, `cifar-100-python`: what torchvision downloads, so what a
//! SupContrast user has; dictionaries of lists, strings and NumPy arrays, written by Python 2's
//! `cPickle`, protocol 2, or by Python 3, protocols 2 to 5), and what `torch.save` writes (the
//! `data.pkl` of its zip archive, the stream of pickles of its format before PyTorch 1.6:
//! supcon-head reads with it the checkpoints holding Python objects that burn-store's reader
//! cannot rebuild).
//!
//! Nothing is executed: a global (`numpy.core.multiarray._reconstruct`, ...) is kept as its
//! name, a call (`REDUCE`, `NEWOBJ`) and what `BUILD`, `SETITEMS` and `APPENDS` add to its result
//! as a [`Value::Object`] (the callable, its arguments, its state, and the entries or items of a
//! dict or list subclass such as `OrderedDict` or `EasyDict`), and a persistent reference (how
//! PyTorch points at a tensor's storage) as a [`Value::Persistent`], for the caller to recognise.
//! Every length is checked against the bytes that are there and nesting is bounded, so a corrupt
//! or hostile file is an error, never a panic or an unbounded allocation.
//!
//! ```
//! use supcon_data::pickle::{self, Value};
//!
//! // Python 3: pickle.dumps({'a': [1, 300]}, protocol=2)
//! let bytes = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02(K\x01M,\x01es.";
//! let value = pickle::load(bytes)?;
//! assert_eq!(value.get("a"), Some(&Value::List(vec![Value::Int(1), Value::Int(300)])));
//! # Ok::<(), pickle::PickleError>(())
//! ```

use std::rc::Rc;

/// A value of the pickle machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True`, `False`.
    Bool(bool),
    /// An `int` that fits 64 bits (wider ones are refused).
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A Python 2 `str`, a Python 3 `bytes` or `bytearray`.
    Bytes(Rc<Vec<u8>>),
    /// A Python `unicode` / `str`.
    Str(String),
    /// A `list` (or a `set`, as its items).
    List(Vec<Value>),
    /// A `tuple`.
    Tuple(Vec<Value>),
    /// A `dict`, its entries in the file's order.
    Dict(Vec<(Value, Value)>),
    /// `module.name`, not resolved.
    Global(String, String),
    /// `callable(*args)`, then what `BUILD`, `SETITEMS` and `APPENDS` gave it.
    Object {
        /// What was called: usually a [`Value::Global`], the class.
        callable: Box<Value>,
        /// Its arguments, a tuple.
        args: Box<Value>,
        /// The state `BUILD` gave it (its `__dict__` or `__setstate__`'s argument), if any.
        state: Option<Box<Value>>,
        /// The entries `SETITEM(S)` gave it: a dict subclass's (`OrderedDict`, `EasyDict`).
        entries: Vec<(Value, Value)>,
        /// The items `APPEND(S)` gave it: a list subclass's.
        items: Vec<Value>,
    },
    /// A persistent reference (`PERSID`, `BINPERSID`): what the pickler's `persistent_id`
    /// returned, which the unpickler's `persistent_load` would resolve; PyTorch's is a tuple
    /// `('storage', storage class, key, location, size)`.
    Persistent(Box<Value>),
}

/// Why a pickle could not be read: what is wrong, and where, for the caller to name the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PickleError(String);

impl Value {
    /// The entry whose key is `key` as text (Python 3) or bytes (Python 2) of a dictionary, or
    /// of an object of a dict subclass.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries()?.iter().find_map(|(k, v)| match k {
            Value::Str(s) if s == key => Some(v),
            Value::Bytes(b) if b.as_slice() == key.as_bytes() => Some(v),
            _ => None,
        })
    }

    /// The entries of a dictionary, or of an object of a dict subclass.
    pub fn entries(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Dict(entries) | Value::Object { entries, .. } => Some(entries),
            _ => None,
        }
    }

    /// Text, from either kind of string.
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Bytes(b) => String::from_utf8(b.to_vec()).ok(),
            _ => None,
        }
    }

    /// Python's truth of a flag (`True`, or 1 as protocol 0 may write it).
    pub fn truthy(&self) -> bool {
        matches!(self, Value::Bool(true) | Value::Int(1))
    }

    /// Whether this is the global `module.name` for one of `modules`.
    pub fn is_global(&self, modules: &[&str], name: &str) -> bool {
        matches!(self, Value::Global(m, n) if n == name && modules.contains(&m.as_str()))
    }
}

/// The deepest nesting of containers accepted (CIFAR's is 4).
const MAX_DEPTH: usize = 64;

/// The most values copied out of the memo (or by `DUP`) in one file. Python shares a memoised
/// value where this reader copies it, so a file that nests references to references would
/// double in size at each level; CIFAR's files copy a handful of names.
const MAX_COPIED: usize = 1 << 20;

/// A value, the depth of the containers in it and the number of values it holds.
#[derive(Clone)]
struct Item {
    value: Value,
    depth: usize,
    size: usize,
}

enum Slot {
    Mark,
    Item(Item),
}

/// Reads the value a pickle holds (the first, where several follow one another).
pub fn load(bytes: &[u8]) -> Result<Value, PickleError> {
    load_prefix(bytes).map(|(value, _)| value)
}

/// Reads the value of the pickle at the start of `bytes`, and returns it with the number of
/// bytes that pickle took: where the next begins, in a stream of several (PyTorch's format
/// before 1.6).
pub fn load_prefix(bytes: &[u8]) -> Result<(Value, usize), PickleError> {
    let mut machine = Machine {
        bytes,
        at: 0,
        stack: Vec::new(),
        memo: std::collections::HashMap::new(),
        copied: 0,
    };
    let value = machine.run().map_err(PickleError)?;
    Ok((value, machine.at))
}

struct Machine<'a> {
    bytes: &'a [u8],
    at: usize,
    stack: Vec<Slot>,
    memo: std::collections::HashMap<u64, Item>,
    /// Values copied so far (see [`MAX_COPIED`]).
    copied: usize,
}

fn leaf(value: Value) -> Item {
    Item {
        value,
        depth: 0,
        size: 1,
    }
}

impl Machine<'_> {
    fn take(&mut self, n: u64) -> Result<&[u8], String> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.at.checked_add(n))
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "truncated pickle: {n} bytes needed at offset {}, {} there",
                    self.at,
                    self.bytes.len() - self.at
                )
            })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn uint(&mut self, width: usize) -> Result<u64, String> {
        let bytes = self.take(width as u64)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = &self.bytes[self.at..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("truncated pickle: a line without its end")?;
        let line = String::from_utf8(rest[..end].to_vec())
            .map_err(|_| "a text argument that is not UTF-8".to_string())?;
        self.at += end + 1;
        Ok(line)
    }

    /// Counts `size` values about to be copied against [`MAX_COPIED`].
    fn count_copy(&mut self, size: usize) -> Result<(), String> {
        self.copied += size;
        if self.copied > MAX_COPIED {
            return Err(format!(
                "references that expand past {MAX_COPIED} copied values"
            ));
        }
        Ok(())
    }

    fn push(&mut self, item: Item) {
        self.stack.push(Slot::Item(item));
    }

    fn pop(&mut self) -> Result<Item, String> {
        match self.stack.pop() {
            Some(Slot::Item(item)) => Ok(item),
            Some(Slot::Mark) => Err("a mark where a value was expected".into()),
            None => Err("an empty stack where a value was expected".into()),
        }
    }

    /// The items above the topmost mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Item>, String> {
        let mut items = Vec::new();
        loop {
            match self.stack.pop() {
                Some(Slot::Item(item)) => items.push(item),
                Some(Slot::Mark) => break,
                None => return Err("no mark to pop to".into()),
            }
        }
        items.reverse();
        Ok(items)
    }

    fn top(&mut self) -> Result<&mut Item, String> {
        match self.stack.last_mut() {
            Some(Slot::Item(item)) => Ok(item),
            _ => Err("no value to add to".into()),
        }
    }

    /// A container of `items`, one level deeper than the deepest of them.
    fn container(items: Vec<Item>, make: fn(Vec<Value>) -> Value) -> Result<Item, String> {
        let depth = items.iter().map(|i| i.depth).max().unwrap_or(0) + 1;
        if depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH}"));
        }
        let size = items.iter().map(|i| i.size).sum::<usize>() + 1;
        Ok(Item {
            value: make(items.into_iter().map(|i| i.value).collect()),
            depth,
            size,
        })
    }

    /// Adds `items` to the list on top of the stack or, as key-value pairs (`dict_items`), to
    /// the dictionary there (an object's, for a list or dict subclass).
    fn extend_top(&mut self, items: Vec<Item>, dict_items: bool) -> Result<(), String> {
        let target = self.top()?;
        let depth = items.iter().map(|i| i.depth + 1).max().unwrap_or(0);
        target.depth = target.depth.max(depth);
        target.size += items.iter().map(|i| i.size).sum::<usize>();
        if target.depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH}"));
        }
        match &mut target.value {
            Value::List(list) | Value::Object { items: list, .. } if !dict_items => {
                list.extend(items.into_iter().map(|i| i.value))
            }
            Value::Dict(entries) | Value::Object { entries, .. } if dict_items => {
                if !items.len().is_multiple_of(2) {
                    return Err("a dictionary key without its value".into());
                }
                let mut items = items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    entries.push((k.value, v.value));
                }
            }
            _ if dict_items => {
                return Err("entries added to a value that is not a dictionary".into());
            }
            _ => return Err("items added to a value that is not a list".into()),
        }
        Ok(())
    }

    fn string(&mut self, width: usize) -> Result<Item, String> {
        let n = self.uint(width)?;
        let text = std::str::from_utf8(self.take(n)?)
            .map_err(|_| "a string that is not UTF-8".to_string())?
            .to_string();
        Ok(leaf(Value::Str(text)))
    }

    fn bytes_of(&mut self, width: usize) -> Result<Item, String> {
        let n = self.uint(width)?;
        Ok(leaf(Value::Bytes(Rc::new(self.take(n)?.to_vec()))))
    }

    fn run(&mut self) -> Result<Value, String> {
        loop {
            let at = self.at;
            let op = *self.take(1)?.first().expect("one byte");
            match op {
                0x80 => {
                    let version = self.uint(1)?;
                    if version > 5 {
                        return Err(format!("pickle protocol {version} (5 is the latest known)"));
                    }
                }
                0x95 => {
                    self.uint(8)?; // FRAME: a length hint.
                }
                b'.' => return Ok(self.pop()?.value),
                b'(' => self.stack.push(Slot::Mark),
                b'0' => {
                    self.stack.pop().ok_or("POP on an empty stack")?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.pop()?;
                    self.count_copy(top.size)?;
                    self.push(top.clone());
                    self.push(top);
                }
                b'N' => self.push(leaf(Value::None)),
                0x88 => self.push(leaf(Value::Bool(true))),
                0x89 => self.push(leaf(Value::Bool(false))),
                b'K' => {
                    let v = self.uint(1)?;
                    self.push(leaf(Value::Int(v as i64)));
                }
                b'M' => {
                    let v = self.uint(2)?;
                    self.push(leaf(Value::Int(v as i64)));
                }
                b'J' => {
                    let v = self.uint(4)? as u32 as i32;
                    self.push(leaf(Value::Int(i64::from(v))));
                }
                0x8a => {
                    let n = self.uint(1)?;
                    let bytes = self.take(n)?;
                    if n > 8 {
                        return Err("an integer wider than 64 bits".into());
                    }
                    let mut v = bytes
                        .iter()
                        .rev()
                        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
                    if n > 0 && n < 8 && bytes[n as usize - 1] & 0x80 != 0 {
                        v |= u64::MAX << (8 * n); // Sign extension.
                    }
                    self.push(leaf(Value::Int(v as i64)));
                }
                b'I' | b'L' => {
                    let line = self.line()?;
                    let digits = line.trim_end_matches('L');
                    let value = match digits {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        _ => Value::Int(
                            digits
                                .parse()
                                .map_err(|_| format!("a bad integer `{line}`"))?,
                        ),
                    };
                    self.push(leaf(value));
                }
                b'G' => {
                    let v = f64::from_bits(u64::from_be_bytes(
                        self.take(8)?.try_into().expect("8 bytes"),
                    ));
                    self.push(leaf(Value::Float(v)));
                }
                b'F' => {
                    let line = self.line()?;
                    let v = line.parse().map_err(|_| format!("a bad float `{line}`"))?;
                    self.push(leaf(Value::Float(v)));
                }
                b'U' | b'C' => {
                    let item = self.bytes_of(1)?;
                    self.push(item);
                }
                b'T' | b'B' => {
                    let item = self.bytes_of(4)?;
                    self.push(item);
                }
                0x8e | 0x96 => {
                    let item = self.bytes_of(8)?;
                    self.push(item);
                }
                0x8c => {
                    let item = self.string(1)?;
                    self.push(item);
                }
                b'X' => {
                    let item = self.string(4)?;
                    self.push(item);
                }
                0x8d => {
                    let item = self.string(8)?;
                    self.push(item);
                }
                // A set is kept as the list of its items (EMPTY_SET, then ADDITEMS; FROZENSET).
                b']' | 0x8f => self.push(leaf(Value::List(Vec::new()))),
                0x90 => {
                    let items = self.pop_mark()?;
                    self.extend_top(items, false)?;
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Self::container(items, Value::List)?);
                }
                b'}' => self.push(leaf(Value::Dict(Vec::new()))),
                b')' => self.push(leaf(Value::Tuple(Vec::new()))),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Self::container(items, Value::List)?);
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push(leaf(Value::Dict(Vec::new())));
                    self.extend_top(items, true)?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Self::container(items, Value::Tuple)?);
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err("a tuple of more values than the stack holds".into());
                    }
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Self::container(items, Value::Tuple)?);
                }
                b'a' => {
                    let item = self.pop()?;
                    self.extend_top(vec![item], false)?;
                }
                b'e' | b'u' => {
                    let items = self.pop_mark()?;
                    self.extend_top(items, op == b'u')?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.extend_top(vec![key, value], true)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(leaf(Value::Global(module, name)));
                }
                0x93 => {
                    let name = self.pop()?.value.text();
                    let module = self.pop()?.value.text();
                    let (Some(module), Some(name)) = (module, name) else {
                        return Err("STACK_GLOBAL of values that are not names".into());
                    };
                    self.push(leaf(Value::Global(module, name)));
                }
                b'R' | 0x81 | 0x92 => {
                    if op == 0x92 {
                        // NEWOBJ_EX: cls, args, kwargs; the keyword arguments are dropped.
                        self.pop()?;
                    }
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let item = Self::container(vec![callable, args], |mut v| {
                        let args = v.pop().expect("two values");
                        let callable = v.pop().expect("two values");
                        Value::Object {
                            callable: Box::new(callable),
                            args: Box::new(args),
                            state: None,
                            entries: Vec::new(),
                            items: Vec::new(),
                        }
                    })?;
                    self.push(item);
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    target.depth = target.depth.max(state.depth + 1);
                    target.size += state.size;
                    if target.depth > MAX_DEPTH {
                        return Err(format!("values nested deeper than {MAX_DEPTH}"));
                    }
                    match &mut target.value {
                        Value::Object { state: slot, .. } => *slot = Some(Box::new(state.value)),
                        _ => return Err("BUILD on a value that is not an object".into()),
                    }
                }
                b'q' | b'r' | b'p' | 0x94 => {
                    let key = match op {
                        b'q' => self.uint(1)?,
                        b'r' => self.uint(4)?,
                        b'p' => {
                            let line = self.line()?;
                            line.parse()
                                .map_err(|_| format!("a bad memo key `{line}`"))?
                        }
                        _ => self.memo.len() as u64,
                    };
                    let size = match self.stack.last() {
                        Some(Slot::Item(item)) => item.size,
                        _ => return Err("nothing to memoise".into()),
                    };
                    self.count_copy(size)?;
                    if let Some(Slot::Item(top)) = self.stack.last() {
                        self.memo.insert(key, top.clone());
                    }
                }
                b'h' | b'j' | b'g' => {
                    let key = match op {
                        b'h' => self.uint(1)?,
                        b'j' => self.uint(4)?,
                        _ => {
                            let line = self.line()?;
                            line.parse()
                                .map_err(|_| format!("a bad memo key `{line}`"))?
                        }
                    };
                    let size = self
                        .memo
                        .get(&key)
                        .ok_or_else(|| format!("memo entry {key} used before it is set"))?
                        .size;
                    self.count_copy(size)?;
                    let item = self.memo[&key].clone();
                    self.push(item);
                }
                b'P' => {
                    let id = self.line()?;
                    self.push(Self::container(vec![leaf(Value::Str(id))], |mut v| {
                        Value::Persistent(Box::new(v.pop().expect("one value")))
                    })?);
                }
                b'Q' => {
                    let id = self.pop()?;
                    self.push(Self::container(vec![id], |mut v| {
                        Value::Persistent(Box::new(v.pop().expect("one value")))
                    })?);
                }
                _ => {
                    return Err(format!(
                        "pickle opcode 0x{op:02x} at offset {at}, which this reader does not \
                         know"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by hand from the pickle format's definition (pickletools), as Python 2's
    /// `cPickle.dumps({'a': [1, 300], 'b': 'xy'}, 2)` lays it out.
    #[test]
    fn a_protocol_2_dictionary_reads_back() {
        let bytes = b"\x80\x02}q\x01(U\x01aq\x02]q\x03(K\x01M,\x01eU\x01bq\x04U\x02xyq\x05u.";
        let value = load(bytes).unwrap();
        assert_eq!(
            value.get("a"),
            Some(&Value::List(vec![Value::Int(1), Value::Int(300)]))
        );
        assert_eq!(value.get("b").and_then(Value::text).as_deref(), Some("xy"));
        assert_eq!(value.get("c"), None);
    }

    /// `{'config': EasyDict(temp=0.5), 'steps': Steps([1, 2]), 'w': <persistent ('storage',
    /// '0', 3)>, 'set': {7}}` as Python 3's pickler writes it at protocols 2 and 4, `EasyDict`
    /// a dict subclass with the entry also as an attribute (`BUILD`), `Steps` a list subclass.
    #[test]
    fn subclasses_of_dict_and_list_and_persistent_references() {
        let protocol_2 = b"\x80\x02}q\x00(X\x06\x00\x00\x00configq\x01ceasydict\x0aEasyDict\x0aq\x02)\x81q\x03X\x04\x00\x00\x00tempq\x04G?\xe0\x00\x00\x00\x00\x00\x00s}q\x05h\x04G?\xe0\x00\x00\x00\x00\x00\x00sbX\x05\x00\x00\x00stepsq\x06ceasydict\x0aSteps\x0aq\x07)\x81q\x08(K\x01K\x02eX\x01\x00\x00\x00wq\x09X\x07\x00\x00\x00storageq\x0aX\x01\x00\x00\x000q\x0bK\x03\x87q\x0cQX\x03\x00\x00\x00setq\x0dc__builtin__\x0aset\x0aq\x0e]q\x0fK\x07a\x85q\x10Rq\x11u.";
        let protocol_4 = b"\x80\x04\x95\x89\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x06config\x94\x8c\x08easydict\x94\x8c\x08EasyDict\x94\x93\x94)\x81\x94\x8c\x04temp\x94G?\xe0\x00\x00\x00\x00\x00\x00s}\x94h\x06G?\xe0\x00\x00\x00\x00\x00\x00sb\x8c\x05steps\x94h\x02\x8c\x05Steps\x94\x93\x94)\x81\x94(K\x01K\x02e\x8c\x01w\x94\x8c\x07storage\x94\x8c\x010\x94K\x03\x87\x94Q\x8c\x03set\x94\x8f\x94(K\x07\x90u.";
        for bytes in [&protocol_2[..], &protocol_4[..]] {
            let value = load(bytes).unwrap();
            let config = value.get("config").unwrap();
            let Value::Object {
                callable, state, ..
            } = config
            else {
                panic!("{config:?}");
            };
            assert!(callable.is_global(&["easydict"], "EasyDict"));
            assert_eq!(config.get("temp"), Some(&Value::Float(0.5)));
            assert_eq!(
                state.as_deref().unwrap().get("temp"),
                Some(&Value::Float(0.5))
            );
            let Some(Value::Object { items, .. }) = value.get("steps") else {
                panic!("{value:?}");
            };
            assert_eq!(items, &[Value::Int(1), Value::Int(2)]);
            let id = Value::Tuple(vec![
                Value::Str("storage".into()),
                Value::Str("0".into()),
                Value::Int(3),
            ]);
            assert_eq!(value.get("w"), Some(&Value::Persistent(Box::new(id))));
        }
        // Protocol 4's set is a list of its items; protocol 2 calls `set` on one.
        let sets = load(protocol_4).unwrap();
        assert_eq!(sets.get("set"), Some(&Value::List(vec![Value::Int(7)])));
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        // Truncated in a length, in a string, without STOP; an unknown opcode; a huge length.
        for bad in [
            &b"\x80\x02T\x05\x00"[..],
            b"\x80\x02U\x05ab",
            b"\x80\x02K\x01",
            b"\x80\x02\xff.",
            b"\x80\x02\x8e\xff\xff\xff\xff\xff\xff\xff\x7f.",
            b"\x80\x02a.",
            b"\x80\x02h\x09.",
            b"\x80\x02(.",
            b"",
        ] {
            assert!(load(bad).is_err(), "{bad:?}");
        }
        // Lists nested a million deep: refused at the bound, not a stack overflow.
        let mut deep = b"\x80\x02".to_vec();
        deep.extend(std::iter::repeat_n(b']', 1_000_000));
        deep.extend(std::iter::repeat_n(b'a', 999_999));
        deep.push(b'.');
        let error = load(&deep).unwrap_err().to_string();
        assert!(error.contains("nested deeper than 64"), "{error}");
        // A list of two references to the list before, 40 times: 2^40 values if copied.
        let mut laughs = b"\x80\x02]q\x00".to_vec();
        for _ in 0..40 {
            laughs.extend(b"]h\x00h\x00\x86aq\x00");
        }
        laughs.push(b'.');
        let error = load(&laughs).unwrap_err().to_string();
        assert!(error.contains("copied values"), "{error}");
    }

    #[test]
    fn pickles_that_follow_one_another_read_one_by_one() {
        // Python: pickle.dumps(1, 2) + pickle.dumps([2], 2)
        let stream = b"\x80\x02K\x01.\x80\x02]q\x00K\x02a.";
        let (first, used) = load_prefix(stream).unwrap();
        assert_eq!((first, used), (Value::Int(1), 5));
        let (second, rest) = load_prefix(&stream[used..]).unwrap();
        assert_eq!(second, Value::List(vec![Value::Int(2)]));
        assert_eq!(used + rest, stream.len());
    }

    #[test]
    fn negative_and_wide_integers() {
        // BININT -2, LONG1 of 1 byte 0xff (-1), LONG1 of 2 bytes 0x00 0x80 (-32768).
        let bytes = b"\x80\x02(J\xfe\xff\xff\xff\x8a\x01\xff\x8a\x02\x00\x80t.";
        assert_eq!(
            load(bytes).unwrap(),
            Value::Tuple(vec![Value::Int(-2), Value::Int(-1), Value::Int(-32768)])
        );
    }
}
