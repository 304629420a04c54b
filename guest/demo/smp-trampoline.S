/* The AP start-up trampoline and ap_start, shared with the SMP test guests; the APs land in
 * ap_main (smp.c). */
#include "../abi.h"
    .intel_syntax noprefix
    .text
#include "../ap-trampoline.inc"
