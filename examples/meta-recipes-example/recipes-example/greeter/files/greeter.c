/* greeter: prints the greeting embedded at build time (greeting.json,
 * turned into greeting.h by embedfile-native), parsed with cJSON, and its
 * right-to-left line in visual order through GNU FriBidi. */
#include <stdio.h>
#include <string.h>

#include <cJSON.h>
#include <fribidi.h>

#include "greeting.h"

int main(void)
{
	cJSON *doc = cJSON_ParseWithLength((const char *)greeting_json, greeting_json_len);
	const cJSON *greeting = cJSON_GetObjectItemCaseSensitive(doc, "greeting");
	const cJSON *rtl = cJSON_GetObjectItemCaseSensitive(doc, "rtl");
	FriBidiChar logical[256], visual[256];
	FriBidiParType dir = FRIBIDI_PAR_ON;
	char out[1024];
	FriBidiStrIndex len;

	if (!cJSON_IsString(greeting) || !cJSON_IsString(rtl)) {
		fprintf(stderr, "greeter: greeting.json lacks \"greeting\" or \"rtl\"\n");
		return 1;
	}
	len = fribidi_charset_to_unicode(FRIBIDI_CHAR_SET_UTF8, rtl->valuestring,
					 (FriBidiStrIndex)strlen(rtl->valuestring), logical);
	if (len > 255 || !fribidi_log2vis(logical, len, &dir, visual, NULL, NULL, NULL)) {
		fprintf(stderr, "greeter: fribidi_log2vis failed\n");
		return 1;
	}
	fribidi_unicode_to_charset(FRIBIDI_CHAR_SET_UTF8, visual, len, out);
	printf("%s (cJSON %s, FriBidi %s)\n%s\n", greeting->valuestring, cJSON_Version(),
	       FRIBIDI_VERSION, out);
	cJSON_Delete(doc);
	return 0;
}
