//! Which replies are outstanding for which commands (RFC 2920). Replies come back in the order
//! the commands went out, so a queue of the commands sent says what each reply answers, with or
//! without pipelining.

use std::collections::VecDeque;

use super::command::{Command, Verb};

/// The commands awaiting a reply, oldest first. A new connection awaits the greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    outstanding: VecDeque<Verb>,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            outstanding: VecDeque::from([Verb::Greeting]),
        }
    }
}

impl Pipeline {
    /// A connection just opened: the server's greeting comes first.
    pub fn new() -> Pipeline {
        Pipeline::default()
    }

    /// Writes `command` into `out` and remembers that a reply to it is due.
    pub fn write(&mut self, command: &Command<'_>, out: &mut Vec<u8>) {
        command.write_to(out);
        self.outstanding.push_back(command.verb());
    }

    /// The end of the data went out: LMTP answers once per accepted recipient (RFC 2033 §4.2),
    /// SMTP once.
    pub fn end_of_data(&mut self, replies: usize) {
        self.outstanding
            .extend(std::iter::repeat_n(Verb::EndOfData, replies));
    }

    /// The command the next reply answers.
    pub fn expected(&self) -> Option<Verb> {
        self.outstanding.front().copied()
    }

    /// A reply came: the command it answers, `None` if nothing was outstanding (a server
    /// talking out of turn).
    pub fn answered(&mut self) -> Option<Verb> {
        self.outstanding.pop_front()
    }

    /// Replies still due.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// After STARTTLS the conversation starts over (RFC 3207 §4.2): nothing said in clear counts.
    pub fn restart(&mut self) {
        self.outstanding.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MailFrom, RcptTo};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pipelined_batch_is_answered_in_order() {
        let mut p = Pipeline::new();
        assert_eq!(p.answered(), Some(Verb::Greeting));
        let mut out = Vec::new();
        p.write(&Command::Hello(Verb::Ehlo, "gw"), &mut out);
        assert_eq!(p.answered(), Some(Verb::Ehlo));
        let mail = MailFrom {
            sender: "a@x",
            ..MailFrom::default()
        };
        p.write(&Command::Mail(mail), &mut out);
        for i in 0..2 {
            let r = RcptTo {
                address: "b@y",
                ..RcptTo::default()
            };
            p.write(&Command::Rcpt(i, r), &mut out);
        }
        p.write(&Command::Data, &mut out);
        assert_eq!(p.outstanding(), 4);
        let order: Vec<_> = std::iter::from_fn(|| p.answered()).collect();
        assert_eq!(
            order,
            [Verb::Mail, Verb::Rcpt(0), Verb::Rcpt(1), Verb::Data]
        );
        p.end_of_data(3);
        assert_eq!(p.expected(), Some(Verb::EndOfData));
        assert_eq!(p.outstanding(), 3);
        assert_eq!(p.answered(), Some(Verb::EndOfData));
        p.restart();
        assert_eq!(p.answered(), None);
    }

    proptest! {
        /// However sends and replies interleave, each reply answers the oldest command sent.
        #[test]
        fn replies_pair_with_commands_in_send_order(steps in proptest::collection::vec(any::<bool>(), 0..64)) {
            let mut p = Pipeline::new();
            p.answered();
            let (mut sent, mut answered) = (0usize, 0usize);
            let mut out = Vec::new();
            for send in steps {
                if send {
                    let r = RcptTo { address: "x@y", ..RcptTo::default() };
                    p.write(&Command::Rcpt(sent, r), &mut out);
                    sent += 1;
                } else if let Some(v) = p.answered() {
                    prop_assert_eq!(v, Verb::Rcpt(answered));
                    answered += 1;
                } else {
                    prop_assert_eq!(sent, answered);
                }
                prop_assert_eq!(p.outstanding(), sent - answered);
            }
        }
    }
}
