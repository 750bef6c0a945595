/* Reset for the probe on qemu-system-arm -M mps3-an547: enable the FPU/MVE coprocessors (CP10,
   CP11), then newlib's semihosting start-up (_start: zeroes .bss, fetches argv, calls main, exits). */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
extern void _start(void);
extern uint32_t __stack;
void Reset_Handler(void) {
  *(volatile uint32_t*)0xE000ED88u |= (0xFu << 20);  /* CPACR: CP10, CP11 full access */
  __asm volatile("dsb\n isb");
  _start();
  for (;;) {}
}
/* A fault ends the run with its status registers (CFSR, HFSR), so the host sees an error, not a hang. */
static void Fault_Handler(void) {
  printf("PROBE error=fault cfsr=0x%08lx hfsr=0x%08lx\n", (unsigned long)*(volatile uint32_t*)0xE000ED28u,
         (unsigned long)*(volatile uint32_t*)0xE000ED2Cu);
  _exit(3);
}
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
  (void (*)(void))&__stack, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
  Fault_Handler, Fault_Handler, 0, 0, 0, 0, Fault_Handler, 0, 0, Fault_Handler, Fault_Handler};
