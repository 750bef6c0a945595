/* Reset for the probe on qemu-system-arm -M mps3-an547: enable the FPU/MVE coprocessors (CP10,
   CP11), then newlib's semihosting start-up (_start: zeroes .bss, fetches argv, calls main, exits). */
#include <stdint.h>
extern void _start(void);
extern uint32_t __stack;
void Reset_Handler(void) {
  *(volatile uint32_t*)0xE000ED88u |= (0xFu << 20);  /* CPACR: CP10, CP11 full access */
  __asm volatile("dsb\n isb");
  _start();
  for (;;) {}
}
static void Fault_Handler(void) { for (;;) {} }
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
  (void (*)(void))&__stack, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
  Fault_Handler, Fault_Handler, 0, 0, 0, 0, Fault_Handler, 0, 0, Fault_Handler, Fault_Handler};
