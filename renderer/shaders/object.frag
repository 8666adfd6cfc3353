uniform sampler2DArray u_model_tex;  // the model's own textures
uniform sampler2DArray u_images;     // texture-variation images

in vec3 v_diffuse;
in vec3 v_spec;
in vec3 v_uvl;
in vec3 v_color;
in vec3 v_obj;
in vec3 v_obj_normal;
flat in vec4 v_tex;
flat in vec3 v_col1;
flat in vec3 v_col2;
flat in vec4 v_dir;

layout(location = 0) out vec4 f_color;
layout(location = 1) out vec4 f_mask;

float pattern(int kind, vec3 q) {
    if (kind == 0) {
        vec3 f = floor(q);
        return mod(f.x + f.y + f.z, 2.0);
    }
    if (kind == 1) return step(0.5, fract(dot(q, v_dir.xyz)));
    if (kind == 2) return smoothstep(0.3, 0.7, fbm(q));
    return step(length(fract(q) - 0.5), 0.3);
}

vec3 triplanar(vec3 p, vec3 n, float layer) {
    vec3 w = abs(normalize(n));
    w /= (w.x + w.y + w.z + 1e-5);
    return w.x * texture(u_images, vec3(p.yz, layer)).rgb
         + w.y * texture(u_images, vec3(p.xz, layer)).rgb
         + w.z * texture(u_images, vec3(p.xy, layer)).rgb;
}

void main() {
    int mode = int(v_tex.x);
    vec3 albedo;
    if (mode == 0) {
        albedo = v_color;
        if (v_uvl.z > -0.5) albedo *= srgb_to_linear(texture(u_model_tex, vec3(v_uvl.xy, floor(v_uvl.z + 0.5))).rgb);
    } else if (mode == 1) {
        albedo = v_col1;
    } else if (mode == 2) {
        albedo = mix(v_col1, v_col2, pattern(int(v_tex.y), v_obj * v_tex.w));
    } else {
        float k = 0.25 * v_tex.w;
        vec3 c = v_dir.w > 0.5 ? texture(u_images, vec3(v_uvl.xy * k, v_tex.z)).rgb
                               : triplanar(v_obj * k, v_obj_normal, v_tex.z);
        albedo = srgb_to_linear(c);
    }
    f_color = vec4(linear_to_srgb(albedo * v_diffuse + v_spec), 1.0);
    f_mask = vec4(1.0);
}
