VIA_ANON = "inherited"
CLASS_ORDER .= " viaanon"
