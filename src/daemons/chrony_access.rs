//! chrony's access table for `allow` and `deny` (its addrfilt.c), to judge
//! what a config's lines serve together: a tree with one level per four
//! address bits, where the most specific record decides and lines that set
//! the same records apply in order (`allow all` / `deny all` also clear
//! everything below their subnet). Pure.

use crate::net::{Family, Net};

const NBITS: u32 = 4;
const TABLE_SIZE: usize = 1 << NBITS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Deny,
    Allow,
    AsParent,
}

#[derive(Debug, Clone)]
struct Node {
    state: State,
    children: Option<Vec<Node>>,
}

impl Node {
    fn new(state: State) -> Node {
        Node {
            state,
            children: None,
        }
    }

    fn children(&mut self) -> &mut Vec<Node> {
        self.children
            .get_or_insert_with(|| vec![Node::new(State::AsParent); TABLE_SIZE])
    }

    /// Every address under this node is allowed, `parent` deciding where
    /// the node itself does not.
    fn allows_all(&self, parent: State) -> bool {
        let state = match self.state {
            State::AsParent => parent,
            s => s,
        };
        match &self.children {
            Some(children) => children.iter().all(|c| c.allows_all(state)),
            None => state == State::Allow,
        }
    }
}

/// One `allow`/`deny` line as chrony parses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rule {
    pub allow: bool,
    /// `allow all SUBNET`: overrides every earlier line inside the subnet.
    pub all: bool,
    /// `None`: no subnet, every IPv4 and IPv6 address.
    pub subnet: Option<Net>,
}

/// The IPv4 and IPv6 tables, which deny everything until a line allows.
#[derive(Debug, Clone)]
pub(super) struct Table {
    v4: Node,
    v6: Node,
}

impl Default for Table {
    fn default() -> Table {
        Table {
            v4: Node::new(State::Deny),
            v6: Node::new(State::Deny),
        }
    }
}

impl Table {
    pub fn apply(&mut self, rule: Rule) {
        let state = if rule.allow {
            State::Allow
        } else {
            State::Deny
        };
        match rule.subnet {
            None => {
                set(&mut self.v4, Family::V4, 0, 0, state, rule.all);
                set(&mut self.v6, Family::V6, 0, 0, state, rule.all);
            }
            Some(net) => {
                let root = match net.family {
                    Family::V4 => &mut self.v4,
                    Family::V6 => &mut self.v6,
                };
                set(root, net.family, net.bits, net.prefix, state, rule.all);
            }
        }
    }

    /// Every address of `family` is served.
    pub fn allows_all(&self, family: Family) -> bool {
        match family {
            Family::V4 => self.v4.allows_all(State::Deny),
            Family::V6 => self.v6.allows_all(State::Deny),
        }
    }
}

/// The four bits of `bits` (an address `width` bits wide) after `consumed`.
fn nibble(bits: u128, width: u32, consumed: u32) -> usize {
    ((bits >> (width - NBITS - consumed)) & 0xf) as usize
}

/// chrony's set_subnet: walk four bits a level; a prefix that ends inside
/// a level sets every record of the level it covers.
fn set(root: &mut Node, family: Family, bits: u128, prefix: u32, state: State, clear: bool) {
    let width = match family {
        Family::V4 => 32,
        Family::V6 => 128,
    };
    let mut node = root;
    let mut consumed = 0;
    while prefix - consumed >= NBITS {
        let i = nibble(bits, width, consumed);
        node = &mut node.children()[i];
        consumed += NBITS;
    }
    let rest = prefix - consumed;
    if rest == 0 {
        if clear {
            node.children = None;
        }
        node.state = state;
        return;
    }
    let n = 1usize << (NBITS - rest);
    let first = nibble(bits, width, consumed) & !(n - 1);
    for child in &mut node.children()[first..first + n] {
        if clear {
            child.children = None;
        }
        child.state = state;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(s: &str) -> Rule {
        Rule {
            allow: true,
            all: false,
            subnet: Net::parse_cidr(s),
        }
    }

    fn deny(s: &str) -> Rule {
        Rule {
            allow: false,
            ..allow(s)
        }
    }

    fn table(rules: &[Rule]) -> Table {
        let mut t = Table::default();
        for r in rules {
            t.apply(*r);
        }
        t
    }

    #[test]
    fn the_union_of_the_lines_decides_per_family() {
        let halves = table(&[allow("0.0.0.0/1"), allow("128.0.0.0/1")]);
        assert!(halves.allows_all(Family::V4));
        assert!(!halves.allows_all(Family::V6));
        let quarters = ["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"];
        let all: Vec<Rule> = quarters.iter().map(|q| allow(q)).collect();
        assert!(table(&all).allows_all(Family::V4));
        assert!(!table(&all[..3]).allows_all(Family::V4));
        let v6 = table(&[allow("::/1"), allow("8000::/1")]);
        assert!(v6.allows_all(Family::V6) && !v6.allows_all(Family::V4));
        // Prefixes across levels: /3 + /3 + /2 + /1 cover everything too.
        let mixed = ["0.0.0.0/3", "32.0.0.0/3", "64.0.0.0/2", "128.0.0.0/1"];
        let mixed: Vec<Rule> = mixed.iter().map(|q| allow(q)).collect();
        assert!(table(&mixed).allows_all(Family::V4));
        // Neither a big network nor no line is everything.
        assert!(!table(&[allow("0.0.0.0/1"), allow("128.0.0.0/2")]).allows_all(Family::V4));
        assert!(!Table::default().allows_all(Family::V4));
    }

    #[test]
    fn a_deny_punches_a_hole_in_any_order_unless_allow_all_clears_it() {
        let hole = [allow("0.0.0.0/0"), deny("10.0.0.0/8")];
        assert!(!table(&hole).allows_all(Family::V4));
        // The more specific record decides, whatever the order.
        let reversed = [deny("10.0.0.0/8"), allow("0.0.0.0/0")];
        assert!(!table(&reversed).allows_all(Family::V4));
        // `allow all` overrides every earlier line inside its subnet.
        let cleared = [
            deny("10.0.0.0/8"),
            Rule {
                all: true,
                ..allow("0.0.0.0/0")
            },
        ];
        assert!(table(&cleared).allows_all(Family::V4));
        // Records of one level apply in order: a later allow of the same
        // records fills the hole again.
        let refilled = [allow("0.0.0.0/0"), deny("10.0.0.0/8"), allow("10.0.0.0/8")];
        assert!(table(&refilled).allows_all(Family::V4));
        // No subnet: both families, as `allow` alone.
        let both = table(&[Rule {
            allow: true,
            all: false,
            subnet: None,
        }]);
        assert!(both.allows_all(Family::V4) && both.allows_all(Family::V6));
    }
}
