VIA_HANDLER = "inherited"
CLASS_ORDER .= " viahandler"

python () {
    d.setVar("VIA_HANDLER_ANON", "ran")
}
