/* Prints the value the host header defines (scripts/test.d/45-host-root-key.sh). */
#include <stdio.h>
#include <bitzel-hostkey-test.h>

int main(void)
{
    printf("%d\n", BITZEL_HOSTKEY_VALUE);
    return 0;
}
