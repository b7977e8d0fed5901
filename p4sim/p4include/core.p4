/*
 * p4sim core library: the declarations every P4_16 program gets from <core.p4>.
 *
 * Written for p4sim. The names, signatures and the order of the error and match_kind members
 * match the core library shipped with p4c, because programs, control planes and P4Info
 * depend on them (error codes are numbered in declaration order).
 */

/* Same include guard name as p4c's copy, so programs that test for it behave the same. */
#ifndef _CORE_P4_
#define _CORE_P4_

/* Built-in error codes, in their numbering order; programs may declare more. */
error {
    NoError,
    PacketTooShort,
    NoMatch,
    StackOutOfBounds,
    HeaderTooShort,
    ParserTimeout,
    ParserInvalidArgument
}

/* The packet as the parser sees it: a read cursor over the bytes. */
extern packet_in {
    /* Copy a fixed-size header out of the packet, mark it valid, move the cursor on. */
    void extract<T>(out T hdr);
    /* Same, for a header with one varbit field whose size (in bits) is given. */
    void extract<T>(out T variableSizeHeader,
                    in bit<32> variableFieldSizeInBits);
    /* Read a T at the cursor without moving it. */
    T lookahead<T>();
    /* Move the cursor forward by a number of bits. */
    void advance(in bit<32> sizeInBits);
    /* Total packet length in bytes. */
    bit<32> length();
}

/* The packet as the deparser builds it. */
extern packet_out {
    /* Append a header (if valid), a stack, a union or a struct of these. */
    void emit<T>(in T hdr);
}

/* In a parser: when check is false, set the parser error and go to reject. */
extern void verify(in bool check, in error toSignal);

/* The action that does nothing; the usual default action of a table. */
@noWarn("unused")
action NoAction() {}

/* Match kinds every target knows; architectures add their own. */
match_kind {
    exact,
    ternary,
    lpm
}

/* Compile-time assertion; returns true so that it can initialise a constant. */
extern bool static_assert(bool check, string message);
extern bool static_assert(bool check);

#endif /* _CORE_P4_ */
