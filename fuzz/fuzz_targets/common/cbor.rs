//! A CBOR tree for structure-aware mutation: parse, mutate, re-encode with lengths fixed.
//! Byte strings whose content is one array, map or tag are parsed as embedded CBOR, so that
//! mutations reach inside bstr-wrapped SUIT and COSE elements. Runs on libFuzzer's thread,
//! outside the code under test; its recursion is bounded by [`MAX_DEPTH`].

/// Deepest tree the mutator parses or builds.
const MAX_DEPTH: usize = 400;

/// xorshift64*, seeded by libFuzzer.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u32) -> Self {
        Rng(u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Clone)]
enum Node {
    Uint(u64),
    Nint(u64),
    Bytes(Vec<u8>),
    /// A bstr holding exactly one CBOR item.
    Embedded(Box<Node>),
    Text(Vec<u8>),
    Array(Vec<Node>),
    /// Keys and values alternating.
    Map(Vec<Node>),
    Tag(u64, Box<Node>),
    /// Simple values and floats, as encoded.
    Other(Vec<u8>),
}

fn head(b: &[u8], pos: &mut usize) -> Option<(u8, u8, u64)> {
    let ib = *b.get(*pos)?;
    *pos += 1;
    let (major, ai) = (ib >> 5, ib & 31);
    let arg = match ai {
        0..=23 => u64::from(ai),
        24..=27 => {
            let n = 1usize << (ai - 24);
            let bytes = b.get(*pos..*pos + n)?;
            *pos += n;
            bytes.iter().fold(0u64, |a, &x| a << 8 | u64::from(x))
        }
        _ => return None, // reserved or indefinite
    };
    Some((major, ai, arg))
}

fn parse(b: &[u8], pos: &mut usize, depth: usize) -> Option<Node> {
    if depth > MAX_DEPTH {
        return None;
    }
    let start = *pos;
    let (major, _, arg) = head(b, pos)?;
    let remaining = (b.len() - *pos) as u64;
    Some(match major {
        0 => Node::Uint(arg),
        1 => Node::Nint(arg),
        2 | 3 => {
            if arg > remaining {
                return None;
            }
            let content = &b[*pos..*pos + arg as usize];
            *pos += arg as usize;
            if major == 3 {
                Node::Text(content.to_vec())
            } else {
                embedded(content, depth).unwrap_or_else(|| Node::Bytes(content.to_vec()))
            }
        }
        4 | 5 => {
            let n = if major == 5 { arg.checked_mul(2)? } else { arg };
            if n > remaining {
                return None;
            }
            let mut items = Vec::with_capacity(n as usize);
            for _ in 0..n {
                items.push(parse(b, pos, depth + 1)?);
            }
            if major == 4 {
                Node::Array(items)
            } else {
                Node::Map(items)
            }
        }
        6 => Node::Tag(arg, Box::new(parse(b, pos, depth + 1)?)),
        _ => Node::Other(b[start..*pos].to_vec()),
    })
}

fn embedded(content: &[u8], depth: usize) -> Option<Node> {
    if !matches!(content.first()? >> 5, 4..=6) {
        return None;
    }
    let mut pos = 0;
    let node = parse(content, &mut pos, depth + 1)?;
    (pos == content.len()).then(|| Node::Embedded(Box::new(node)))
}

fn put_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    match arg {
        0..=23 => out.push(m | arg as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, arg as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(arg as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(arg as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&arg.to_be_bytes());
        }
    }
}

fn encode(node: &Node, out: &mut Vec<u8>) {
    match node {
        Node::Uint(v) => put_head(out, 0, *v),
        Node::Nint(v) => put_head(out, 1, *v),
        Node::Bytes(b) => {
            put_head(out, 2, b.len() as u64);
            out.extend_from_slice(b);
        }
        Node::Embedded(inner) => {
            let mut content = Vec::new();
            encode(inner, &mut content);
            put_head(out, 2, content.len() as u64);
            out.extend_from_slice(&content);
        }
        Node::Text(t) => {
            put_head(out, 3, t.len() as u64);
            out.extend_from_slice(t);
        }
        Node::Array(items) => {
            put_head(out, 4, items.len() as u64);
            items.iter().for_each(|i| encode(i, out));
        }
        Node::Map(items) => {
            put_head(out, 5, (items.len() / 2) as u64);
            items.iter().for_each(|i| encode(i, out));
        }
        Node::Tag(t, inner) => {
            put_head(out, 6, *t);
            encode(inner, out);
        }
        Node::Other(raw) => out.extend_from_slice(raw),
    }
}

fn children(node: &mut Node) -> &mut [Node] {
    match node {
        Node::Array(items) | Node::Map(items) => items,
        Node::Embedded(inner) | Node::Tag(_, inner) => std::slice::from_mut(inner.as_mut()),
        _ => &mut [],
    }
}

fn count(node: &Node) -> usize {
    1 + match node {
        Node::Array(items) | Node::Map(items) => items.iter().map(count).sum(),
        Node::Embedded(inner) | Node::Tag(_, inner) => count(inner),
        _ => 0,
    }
}

fn depth(node: &Node) -> usize {
    1 + match node {
        Node::Array(items) | Node::Map(items) => items.iter().map(depth).max().unwrap_or(0),
        Node::Embedded(inner) | Node::Tag(_, inner) => depth(inner),
        _ => 0,
    }
}

/// Applies `f` to the `k`-th node in pre-order.
fn visit_nth(node: &mut Node, k: &mut usize, f: &mut impl FnMut(&mut Node)) -> bool {
    if *k == 0 {
        f(node);
        return true;
    }
    *k -= 1;
    children(node)
        .iter_mut()
        .any(|child| visit_nth(child, k, f))
}

fn nth_clone(node: &Node, k: &mut usize) -> Option<Node> {
    if *k == 0 {
        return Some(node.clone());
    }
    *k -= 1;
    let kids: &[Node] = match node {
        Node::Array(items) | Node::Map(items) => items,
        Node::Embedded(inner) | Node::Tag(_, inner) => std::slice::from_ref(inner.as_ref()),
        _ => &[],
    };
    kids.iter().find_map(|c| nth_clone(c, k))
}

/// Integers that mean something in SUIT and COSE.
const INTERESTING: [i64; 20] = [
    0, 1, 2, 3, 4, 7, 15, 16, 18, 20, 23, 24, -1, -7, -16, -35, -43, 96, 107, 1070,
];
/// Tags of COSE and SUIT structures.
const TAGS: [u64; 9] = [16, 17, 18, 24, 96, 97, 98, 107, 1070];

fn int(v: i64) -> Node {
    if v >= 0 {
        Node::Uint(v as u64)
    } else {
        Node::Nint(!(v as u64))
    }
}

/// One structural mutation of the CBOR item `input` starts with (bytes after it are kept);
/// `None` when nothing parses.
pub fn mutate(input: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
    let mut pos = 0;
    let mut root = parse(input, &mut pos, 0)?;
    let tail = &input[pos..];
    let total = count(&root);
    let donor = nth_clone(&root, &mut rng.below(total))?;
    // Room for deeper nesting without exceeding what the mutator parses back.
    let room = depth(&root) + 128 < MAX_DEPTH;
    let op = rng.below(7);
    let mut k = rng.below(total);
    visit_nth(&mut root, &mut k, &mut |node| {
        apply(node, op, donor.clone(), room, rng)
    });
    let mut out = Vec::new();
    encode(&root, &mut out);
    out.extend_from_slice(tail);
    Some(out)
}

fn apply(node: &mut Node, op: usize, donor: Node, room: bool, rng: &mut Rng) {
    match op {
        // Deep nesting: wrap the item in up to 128 one-element arrays.
        0 if room => {
            for _ in 0..=rng.below(128) {
                *node = Node::Array(vec![std::mem::replace(node, Node::Uint(0))]);
            }
        }
        1 => *node = Node::Tag(TAGS[rng.below(TAGS.len())], Box::new(node.clone())),
        // Duplicate or delete an element (a pair in maps).
        2 | 3 => {
            let grow = op == 2;
            match node {
                Node::Array(items) if !items.is_empty() => {
                    let i = rng.below(items.len());
                    if grow {
                        items.insert(i, items[i].clone());
                    } else {
                        items.remove(i);
                    }
                }
                Node::Map(items) if items.len() >= 2 => {
                    let i = rng.below(items.len() / 2) * 2;
                    if grow {
                        let pair = [items[i].clone(), items[i + 1].clone()];
                        items.splice(i..i, pair);
                    } else {
                        items.drain(i..i + 2);
                    }
                }
                _ => *node = Node::Array(vec![node.clone(), donor]),
            }
        }
        // Splice another item of the input here.
        4 => *node = donor,
        5 => *node = int(INTERESTING[rng.below(INTERESTING.len())]),
        // Byte strings: unwrap embedded CBOR, or change the length.
        _ => match node {
            Node::Embedded(inner) => {
                let mut raw = Vec::new();
                encode(inner, &mut raw);
                *node = Node::Bytes(raw);
            }
            Node::Bytes(b) | Node::Text(b) => {
                let n = rng.below(b.len() + 33);
                b.resize(n, rng.below(256) as u8);
            }
            _ => {
                *node = Node::Map(vec![
                    int(INTERESTING[rng.below(INTERESTING.len())]),
                    node.clone(),
                ])
            }
        },
    }
}
